// SPDX-License-Identifier: MIT
// etcd_load: the etcd side of benchmarks/paxos_kv: N concurrent clients issue sequential puts of
// fixed-size values through etcd's own Go client (clientv3) and the tool prints throughput and
// latency percentiles as one JSON line. Built offline in GOPATH mode against Debian's
// golang-etcd-server-dev (see scripts/bench-paxos-kv).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type result struct {
	System     string  `json:"system"`
	Clients    int     `json:"clients"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"ops_per_s"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs (host:port)")
	clients := flag.Int("clients", 1, "concurrent clients (each issues one put at a time)")
	conns := flag.Int("conns", 16, "gRPC connections shared by the clients (at most one per client)")
	duration := flag.Duration("duration", 5*time.Second, "measured run time")
	warmup := flag.Duration("warmup", 1*time.Second, "unmeasured warm-up")
	valueSize := flag.Int("value-size", 100, "bytes per value")
	keys := flag.Int("keys", 100000, "key space")
	caFile := flag.String("cacert", "", "with -cert and -key: TLS to the endpoints, trusting this CA (PEM)")
	certFile := flag.String("cert", "", "client certificate (PEM) for mutual TLS")
	keyFile := flag.String("key", "", "client key (PEM) for mutual TLS")
	flag.Parse()

	var tlsConfig *tls.Config
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_load: -cacert:", err)
			os.Exit(1)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "etcd_load: -cacert: no certificate in", *caFile)
			os.Exit(1)
		}
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_load: -cert/-key:", err)
			os.Exit(1)
		}
		tlsConfig = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}

	n := *conns
	if n > *clients {
		n = *clients
	}
	if n < 1 {
		n = 1
	}
	eps := strings.Split(*endpoints, ",")
	cs := make([]*clientv3.Client, n)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tlsConfig})
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd_load: connect:", err)
			os.Exit(1)
		}
		defer c.Close()
		cs[i] = c
	}
	value := strings.Repeat("v", *valueSize)

	var mu sync.Mutex
	var all []time.Duration
	errors := 0
	start := time.Now()
	measureFrom := start.Add(*warmup)
	stopAt := measureFrom.Add(*duration)
	var wg sync.WaitGroup
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := cs[w%n]
			var lat []time.Duration
			errs := 0
			for i := 0; ; i++ {
				t0 := time.Now()
				if t0.After(stopAt) {
					break
				}
				key := fmt.Sprintf("k%08d", (w*7919+i)%*keys)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Put(ctx, key, value)
				cancel()
				t1 := time.Now()
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, t1.Sub(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errors += errs
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Nanoseconds()) / 1000
	}
	secs := duration.Seconds()
	r := result{System: "etcd", Clients: *clients, Ops: len(all), Errors: errors, Seconds: secs,
		Throughput: float64(len(all)) / secs, P50us: pct(0.50), P99us: pct(0.99)}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
