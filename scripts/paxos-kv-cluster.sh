# SPDX-License-Identifier: MIT
# scripts/paxos-kv-cluster.sh: shell helpers (sourced) that run a 3-member paxos_kv cluster on
# loopback: free ports, one data directory per member, a generated cluster key.
#   kv_cluster_start DIR SERVER CLIENT  starts members 1..3 (SERVER, CLIENT: the two programs);
#                                  sets KV_SERVERS (the client addresses)
#   kv_start ID / kv_kill ID       (re)starts or kill -9s one member
#   kv_leader                      prints the id of the member that reports role=leader
# The caller's `pids` array collects the server pids (for its cleanup trap). KV_SERVER_FLAGS adds
# flags to every member; with KV_TLS_DIR set, member i also gets --tls-cert KV_TLS_DIR/node<i>.pem,
# --tls-key KV_TLS_DIR/node<i>.key and --tls-ca KV_TLS_DIR/ca.pem (mutual TLS on the peer port).

kv_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

kv_wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "paxos-kv-cluster: port $1 never opened" >&2
  return 1
}

kv_cluster_start() {
  KV_DIR="$1"
  KV_SERVER_BIN="$2"
  KV_CLIENT_BIN="$3"
  mkdir -p "$KV_DIR"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KV_DIR/cluster.key"
  declare -gA KV_PEER_PORT KV_CLIENT_PORT KV_PID
  KV_PEERS=""
  KV_SERVERS=""
  for i in 1 2 3; do
    KV_PEER_PORT[$i]=$(kv_free_port)
    KV_CLIENT_PORT[$i]=$(kv_free_port)
    KV_PEERS+="${KV_PEERS:+,}$i=127.0.0.1:${KV_PEER_PORT[$i]}:${KV_CLIENT_PORT[$i]}"
    KV_SERVERS+="${KV_SERVERS:+,}127.0.0.1:${KV_CLIENT_PORT[$i]}"
  done
  for i in 1 2 3; do kv_start "$i"; done
  # Bounded wait for an elected leader.
  for _ in $(seq 1 100); do
    if [[ -n "$(kv_leader)" ]]; then return 0; fi
    sleep 0.1
  done
  echo "paxos-kv-cluster: no leader elected" >&2
  return 1
}

kv_start() {
  local i="$1"
  local tls=()
  if [[ -n "${KV_TLS_DIR:-}" ]]; then
    tls=(--tls-cert "$KV_TLS_DIR/node$i.pem" --tls-key "$KV_TLS_DIR/node$i.key" --tls-ca "$KV_TLS_DIR/ca.pem")
  fi
  "$KV_SERVER_BIN" --id "$i" --peers "$KV_PEERS" --data-dir "$KV_DIR/node$i" \
    --cluster-key-file "$KV_DIR/cluster.key" "${tls[@]}" ${KV_SERVER_FLAGS:-} >>"$KV_DIR/node$i.log" 2>&1 &
  KV_PID[$i]=$!
  pids+=($!)
  kv_wait_port "${KV_CLIENT_PORT[$i]}"
}

kv_kill() {
  kill -9 "${KV_PID[$1]}" 2>/dev/null || true
  wait "${KV_PID[$1]}" 2>/dev/null || true
}

kv_leader() {
  "$KV_CLIENT_BIN" --servers "$KV_SERVERS" status 2>/dev/null |
    sed -n 's/.* id=\([0-9]*\) role=leader.*/\1/p' | head -1
}
