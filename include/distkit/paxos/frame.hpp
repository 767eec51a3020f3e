// SPDX-License-Identifier: MIT
// distkit/paxos/frame.hpp: the authenticated wire frame that carries Paxos messages between nodes.
//
// Link `distkit::openssl` (HMAC-SHA256). Layout, all integers little-endian:
//
//   offset size field
//        0    4 magic "DKPX" (0x58504B44 read as little-endian)
//        4    1 version (2)
//        5    1 flags: bit 0 = an HMAC-SHA256 trailer follows the body; bit 1 = hello (its body
//                 is the receiver's 16-byte challenge: it proves the connection's sender);
//                 other bits must be 0
//        6    2 reserved, must be 0
//        8    8 cluster id
//       16    4 sender node id
//       20    4 receiver node id
//       24    8 sequence number (strictly increasing per sender, for replay protection)
//       32    4 body length
//       36    4 CRC-32C of bytes [0, 36) followed by the body
//       40    n body
//     40+n   32 HMAC-SHA256(cluster key, bytes [0, 40+n))   (only with flag bit 0)
//
// Decoding is strict and ordered so that nothing is allocated or trusted before it is checked:
// the fixed header is validated first (magic, version, flags, cluster, receiver, known sender,
// body length against the configured maximum), then the CRC, then the MAC (constant-time
// compare), and only a frame that passed all of them may advance the sender's sequence number.
//
// A receiver opens every connection by writing a fresh random 16-byte challenge; the sender's
// first frame is a hello (flag bit 1) whose body is that challenge. So a receiver can hold a
// connection that has not yet shown one authentic frame to a small body bound (`check_header`'s
// `max_body` argument) and give it nothing more until it does, and a recorded connection
// replayed to it (even to its next process) never gets past the hello. Sequence numbers are
// checked per connection from its hello on, so a sender whose clock stepped back across a
// restart is not locked out.
#pragma once

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distkit/detail/crc32c.hpp"
#include "distkit/detail/endian.hpp"
#include "distkit/detail/error.hpp"
#include "distkit/errors.hpp"

namespace distkit::inline v0::paxos {

/// Node identifier carried in a frame.
using frame_node_id = std::uint32_t;

/// Constants of the frame format.
struct frame_format {
  static constexpr std::uint32_t magic = 0x58504B44U;  // "DKPX" in memory order
  /// 2: the Paxos messages of distkit 0.2 (promise parts with the chosen marker, snapshot
  /// chunks and acks). A node of another version is refused at its first frame (`bad_version`)
  /// rather than misreading its messages.
  static constexpr std::uint8_t version = 2;
  static constexpr std::uint8_t flag_mac = 0x01;
  static constexpr std::uint8_t flag_hello = 0x02;
  /// Bytes of the challenge a receiver sends on each new connection (the hello's body).
  static constexpr std::size_t challenge_size = 16;
  static constexpr std::size_t header_size = 40;
  static constexpr std::size_t crc_offset = 36;
  static constexpr std::size_t mac_size = 32;
  /// Default cap on a body: a Paxos batch or a snapshot chunk fits comfortably.
  static constexpr std::size_t default_max_body = std::size_t{16} << 20;
  /// Hard cap: the length field is 32 bits, and no configuration may exceed 1 GiB.
  static constexpr std::size_t max_body_limit = std::size_t{1} << 30;
  /// Shortest cluster key accepted (128 bits).
  static constexpr std::size_t min_key_size = 16;
};

/// Why a frame was refused. `none` means accepted.
enum class frame_error_kind : std::uint8_t {
  none = 0,
  bad_magic,
  bad_version,
  bad_flags,
  oversized,
  truncated,
  bad_checksum,
  wrong_cluster,
  wrong_receiver,
  unknown_sender,
  missing_mac,
  bad_mac,
  replayed,
  bad_hello,    ///< a connection's first frame was not a hello answering its challenge
  unknown_key,  ///< signed with a key id the receiver's keyring does not hold
};
inline constexpr std::size_t frame_error_kind_count = 15;

/// A short lower-case name for a refusal reason ("bad_mac", ...).
[[nodiscard]] constexpr auto to_string(frame_error_kind kind) noexcept -> std::string_view {
  switch (kind) {
    case frame_error_kind::none:
      return "none";
    case frame_error_kind::bad_magic:
      return "bad_magic";
    case frame_error_kind::bad_version:
      return "bad_version";
    case frame_error_kind::bad_flags:
      return "bad_flags";
    case frame_error_kind::oversized:
      return "oversized";
    case frame_error_kind::truncated:
      return "truncated";
    case frame_error_kind::bad_checksum:
      return "bad_checksum";
    case frame_error_kind::wrong_cluster:
      return "wrong_cluster";
    case frame_error_kind::wrong_receiver:
      return "wrong_receiver";
    case frame_error_kind::unknown_sender:
      return "unknown_sender";
    case frame_error_kind::missing_mac:
      return "missing_mac";
    case frame_error_kind::bad_mac:
      return "bad_mac";
    case frame_error_kind::replayed:
      return "replayed";
    case frame_error_kind::bad_hello:
      return "bad_hello";
    case frame_error_kind::unknown_key:
      return "unknown_key";
  }
  return "unknown";
}

/// @brief Thrown by `frame_decoder::decode` for a frame that fails any check; `kind()` says which.
class frame_error : public corrupt_data_error {
 public:
  explicit frame_error(frame_error_kind kind)
      : corrupt_data_error("distkit::paxos::frame: refused frame (" + std::string(to_string(kind)) + ")"),
        kind_(kind) {}
  [[nodiscard]] auto kind() const noexcept -> frame_error_kind { return kind_; }

 private:
  frame_error_kind kind_;
};

/// @brief The fixed part of a frame, as decoded.
struct frame_header {
  std::uint8_t flags = 0;
  std::uint64_t cluster_id = 0;
  frame_node_id from = 0;
  frame_node_id to = 0;
  std::uint64_t sequence = 0;
  std::uint32_t body_length = 0;
  std::uint32_t crc = 0;
  std::uint16_t key_id = 0;  ///< the key a signed frame was signed with (0 when unsigned)

  [[nodiscard]] auto has_mac() const noexcept -> bool { return (flags & frame_format::flag_mac) != 0; }
  /// A hello: its body answers the receiver's challenge; it authenticates the connection and is
  /// never delivered.
  [[nodiscard]] auto is_hello() const noexcept -> bool { return (flags & frame_format::flag_hello) != 0; }
  /// Bytes that follow the header on the wire: body and, if present, the MAC.
  [[nodiscard]] auto trailer_size() const noexcept -> std::size_t {
    return std::size_t{body_length} + (has_mac() ? frame_format::mac_size : 0);
  }
};

/// @brief A cluster key for HMAC-SHA256 frame authentication (at least 16 bytes).
///
/// @throws std::invalid_argument if the key is shorter than 16 bytes or the file is unreadable.
/// **Thread safety:** immutable after construction.
/// @code
/// auto key = distkit::paxos::frame_key::from_file("/etc/kv/cluster.key");
/// @endcode
class frame_key {
 public:
  explicit frame_key(std::span<const std::byte> bytes) : bytes_(bytes.begin(), bytes.end()) {
    if (bytes_.size() < frame_format::min_key_size) {
      distkit::detail::throw_invalid_argument("paxos::frame_key", "key", "must be at least 16 bytes",
                                              std::to_string(bytes_.size()) + " bytes");
    }
  }
  explicit frame_key(std::string_view text) : frame_key(std::as_bytes(std::span(text.data(), text.size()))) {}

  /// Reads a key file; trailing whitespace (a final newline from an editor) is not part of the key.
  [[nodiscard]] static auto from_file(const std::filesystem::path& path) -> frame_key {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      distkit::detail::throw_invalid_argument("paxos::frame_key", "key file", "must be readable", path.string());
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) {
      text.pop_back();
    }
    return frame_key(std::string_view(text));
  }

  [[nodiscard]] auto bytes() const noexcept -> std::span<const std::byte> { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

/// @brief The cluster keys a node holds, by 16-bit id, and the one it signs with. Frames carry
/// the id of the key that signed them, so keys rotate across a running cluster with no
/// refused frame: add the new key to every node's keyring, then make it the signing key on
/// every node, then remove the old one (each step reaching every node before the next).
///
/// Key files (`from_file`): a file whose first line is `# distkit keyring` holds one
/// `<id> <key>` per line (blank lines and `#` comments ignored) and optionally `sign <id>`
/// (default: the first key listed); any other file is one key with id 0 (trailing
/// whitespace trimmed), as `frame_key::from_file` reads it.
///
/// @throws std::invalid_argument naming the parameter (a key shorter than 16 bytes, a
///         duplicate or malformed id, a signing key not in the ring, an unreadable file).
/// **Thread safety:** none; copy it to hand it to another thread.
class frame_keyring {
 public:
  frame_keyring() = default;
  /// One key, id 0, used for signing (what a node with a single cluster key has).
  explicit frame_keyring(frame_key key) { add(0, std::move(key)); }

  /// Adds (or replaces) key `id`; the first key added signs until `sign_with` says otherwise.
  void add(std::uint16_t id, frame_key key) {
    keys_.insert_or_assign(id, std::move(key));
    if (!signing_) signing_ = id;
  }
  /// Removes key `id`. @throws std::invalid_argument if it is the signing key.
  void remove(std::uint16_t id) {
    if (signing_ == id) {
      distkit::detail::throw_invalid_argument("paxos::frame_keyring", "id", "must not be the signing key", id);
    }
    keys_.erase(id);
  }
  /// Signs with key `id` from now on. @throws std::invalid_argument if the ring lacks it.
  void sign_with(std::uint16_t id) {
    if (!keys_.contains(id)) {
      distkit::detail::throw_invalid_argument("paxos::frame_keyring", "sign", "must name a key in the ring", id);
    }
    signing_ = id;
  }

  [[nodiscard]] auto empty() const noexcept -> bool { return keys_.empty(); }
  [[nodiscard]] auto size() const noexcept -> std::size_t { return keys_.size(); }
  /// The id frames are signed with (meaningless when empty).
  [[nodiscard]] auto signing_id() const noexcept -> std::uint16_t { return signing_.value_or(0); }
  [[nodiscard]] auto signing_key() const -> const frame_key& { return keys_.at(signing_id()); }
  [[nodiscard]] auto find(std::uint16_t id) const noexcept -> const frame_key* {
    auto it = keys_.find(id);
    return it == keys_.end() ? nullptr : &it->second;
  }
  [[nodiscard]] auto keys() const noexcept -> const std::map<std::uint16_t, frame_key>& { return keys_; }

  /// Reads a key file (see above).
  [[nodiscard]] static auto from_file(const std::filesystem::path& path) -> frame_keyring {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      distkit::detail::throw_invalid_argument("paxos::frame_keyring", "key file", "must be readable", path.string());
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    constexpr std::string_view header = "# distkit keyring";
    if (text.compare(0, header.size(), header) != 0) return frame_keyring(frame_key::from_file(path));
    frame_keyring ring;
    std::optional<std::uint16_t> sign;
    std::size_t line_no = 0;
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + start, end - start);
      start = end + 1;
      ++line_no;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
      if (line.empty() || line.front() == '#') continue;
      const auto bad = [&](const char* what) {
        distkit::detail::throw_invalid_argument("paxos::frame_keyring", "key file",
                                                std::string(what) + " at line " + std::to_string(line_no),
                                                path.string());
      };
      const std::size_t space = line.find(' ');
      if (space == std::string_view::npos) bad("expected '<id> <key>' or 'sign <id>'");
      const std::string_view first = line.substr(0, space);
      const std::string_view rest = line.substr(space + 1);
      const auto parse_id = [&](std::string_view t) -> std::uint16_t {
        unsigned v = 0;
        const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (t.empty() || ec != std::errc{} || p != t.data() + t.size() || v > 0xFFFFU)
          bad("a key id must be 0 to 65535");
        return static_cast<std::uint16_t>(v);
      };
      if (first == "sign") {
        sign = parse_id(rest);
        continue;
      }
      const std::uint16_t id = parse_id(first);
      if (ring.find(id) != nullptr) bad("duplicate key id");
      ring.add(id, frame_key(rest));
    }
    if (ring.empty()) {
      distkit::detail::throw_invalid_argument("paxos::frame_keyring", "key file", "holds no key", path.string());
    }
    if (sign) ring.sign_with(*sign);
    return ring;
  }

 private:
  std::map<std::uint16_t, frame_key> keys_;
  std::optional<std::uint16_t> signing_;
};

namespace internal {

/// HMAC-SHA256 with a context keyed once and re-initialised per message (OpenSSL 3 EVP_MAC).
class hmac_sha256 {
 public:
  explicit hmac_sha256(const frame_key& key) {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac_ != nullptr ? EVP_MAC_CTX_new(mac_) : nullptr;
    if (ctx_ == nullptr)
      distkit::detail::throw_logic_error("paxos::frame", "OpenSSL has no HMAC (is the default provider loaded?)");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    auto k = key.bytes();
    if (EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(k.data()), k.size(), params) != 1) {
      release();
      distkit::detail::throw_logic_error("paxos::frame", "HMAC-SHA256 initialisation failed");
    }
  }
  hmac_sha256(const hmac_sha256&) = delete;
  auto operator=(const hmac_sha256&) -> hmac_sha256& = delete;
  hmac_sha256(hmac_sha256&& other) noexcept
      : mac_(std::exchange(other.mac_, nullptr)), ctx_(std::exchange(other.ctx_, nullptr)) {}
  auto operator=(hmac_sha256&& other) noexcept -> hmac_sha256& {
    if (this != &other) {
      release();
      mac_ = std::exchange(other.mac_, nullptr);
      ctx_ = std::exchange(other.ctx_, nullptr);
    }
    return *this;
  }
  ~hmac_sha256() { release(); }

  /// MAC of `data` into `out` (32 bytes).
  void compute(const std::byte* data, std::size_t size, std::byte* out) {
    std::size_t written = 0;
    // A null key re-initialises with the key set at construction.
    if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1 ||
        EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(data), size) != 1 ||
        EVP_MAC_final(ctx_, reinterpret_cast<unsigned char*>(out), &written, frame_format::mac_size) != 1 ||
        written != frame_format::mac_size) {
      distkit::detail::throw_logic_error("paxos::frame", "HMAC-SHA256 computation failed");
    }
  }

 private:
  void release() noexcept {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
    ctx_ = nullptr;
    mac_ = nullptr;
  }
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

}  // namespace internal

/// @brief Writes frames from one node: assigns sequence numbers, checksums and signs.
///
/// Sequence numbers start at `first_sequence` and increase by one per frame. Receivers remember
/// the highest sequence number accepted from each sender and refuse anything not above it, so a
/// restarted sender must start above what it used before: the default start (wall-clock
/// nanoseconds) does that as long as the sender emits fewer than 10^9 frames per second and the
/// clock does not step back across the restart.
///
/// **Thread safety:** none; one encoder per sending thread (or under a lock).
/// **Complexity:** O(body size) per frame (CRC-32C, plus HMAC-SHA256 when keyed).
/// @code
/// auto key = distkit::paxos::frame_key::from_file("/etc/kv/cluster.key");
/// std::vector<std::byte> body(64);  // the message
/// distkit::paxos::frame_encoder enc(/*cluster*/ 7, /*from*/ 1, key);
/// std::vector<std::byte> wire;
/// enc.encode(/*to*/ 2, body, wire);  // appends one frame
/// @endcode
class frame_encoder {
 public:
  frame_encoder(std::uint64_t cluster_id, frame_node_id from, std::optional<frame_key> key = std::nullopt,
                std::optional<std::uint64_t> first_sequence = std::nullopt)
      : cluster_id_(cluster_id), from_(from), next_sequence_(first_sequence.value_or(default_first_sequence())) {
    if (key) hmac_.emplace(*key);
  }
  /// Signs with the keyring's signing key and writes its id in every frame.
  frame_encoder(std::uint64_t cluster_id, frame_node_id from, const frame_keyring& keys,
                std::optional<std::uint64_t> first_sequence = std::nullopt)
      : frame_encoder(cluster_id, from, std::nullopt, first_sequence) {
    rekey(keys);
  }

  /// Signs the frames encoded from now on with `keys`' signing key (an empty ring: unsigned).
  void rekey(const frame_keyring& keys) {
    hmac_.reset();
    key_id_ = 0;
    if (keys.empty()) return;
    hmac_.emplace(keys.signing_key());
    key_id_ = keys.signing_id();
  }

  /// The start of a sequence that exceeds any used by an earlier run of this process (see above).
  [[nodiscard]] static auto default_first_sequence() noexcept -> std::uint64_t {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  }

  /// Appends one frame carrying `body` addressed to `to` to `out`; returns its sequence number.
  /// @throws std::invalid_argument if the body exceeds the format's 1 GiB limit.
  auto encode(frame_node_id to, std::span<const std::byte> body, std::vector<std::byte>& out) -> std::uint64_t {
    return encode_frame(to, body, out, 0);
  }

  /// Appends a hello frame (flag bit 1) carrying `challenge` (the 16 bytes the receiver sent
  /// on this connection) addressed to `to`: the first frame of every connection, so that the
  /// receiver can authenticate the connection before it gives it more than a small buffer.
  /// Returns its sequence number.
  ///
  /// With `sequence`, the hello carries that number instead of the next one (the encoder's
  /// counter does not move): a sender that reserved a number before each queued frame (see
  /// `skip_sequence`) sends its hello just below the first frame still queued, so the frames
  /// queued before the connection was made are not refused as replays after it.
  auto encode_hello(frame_node_id to, std::span<const std::byte> challenge, std::vector<std::byte>& out,
                    std::optional<std::uint64_t> sequence = std::nullopt) -> std::uint64_t {
    if (!sequence) return encode_frame(to, challenge, out, frame_format::flag_hello);
    const std::uint64_t saved = std::exchange(next_sequence_, *sequence);
    const std::uint64_t used = encode_frame(to, challenge, out, frame_format::flag_hello);
    next_sequence_ = saved;
    return used;
  }

  /// Leaves the next sequence number unused (reserved for a hello sent before the next frame).
  void skip_sequence() noexcept { ++next_sequence_; }

  /// The sequence number of an encoded frame (`frame` starts with its header).
  [[nodiscard]] static auto sequence_of(std::span<const std::byte> frame) noexcept -> std::uint64_t {
    return frame.size() < frame_format::header_size ? 0 : distkit::detail::load_le<std::uint64_t>(frame.data() + 24);
  }

  [[nodiscard]] auto next_sequence() const noexcept -> std::uint64_t { return next_sequence_; }
  [[nodiscard]] auto from() const noexcept -> frame_node_id { return from_; }
  [[nodiscard]] auto cluster_id() const noexcept -> std::uint64_t { return cluster_id_; }

 private:
  auto encode_frame(frame_node_id to, std::span<const std::byte> body, std::vector<std::byte>& out,
                    std::uint8_t extra_flags) -> std::uint64_t {
    if (body.size() > frame_format::max_body_limit) {
      distkit::detail::throw_invalid_argument("paxos::frame_encoder", "body", "must be at most 1 GiB",
                                              std::to_string(body.size()) + " bytes");
    }
    const std::size_t start = out.size();
    const std::size_t total = frame_format::header_size + body.size() + (hmac_ ? frame_format::mac_size : 0);
    out.resize(start + total);
    std::byte* p = out.data() + start;
    const std::uint64_t sequence = next_sequence_++;
    distkit::detail::store_le<std::uint32_t>(p + 0, frame_format::magic);
    p[4] = std::byte{frame_format::version};
    p[5] = std::byte{static_cast<std::uint8_t>((hmac_ ? frame_format::flag_mac : 0) | extra_flags)};
    distkit::detail::store_le<std::uint16_t>(p + 6, hmac_ ? key_id_ : std::uint16_t{0});
    distkit::detail::store_le<std::uint64_t>(p + 8, cluster_id_);
    distkit::detail::store_le<std::uint32_t>(p + 16, from_);
    distkit::detail::store_le<std::uint32_t>(p + 20, to);
    distkit::detail::store_le<std::uint64_t>(p + 24, sequence);
    distkit::detail::store_le<std::uint32_t>(p + 32, static_cast<std::uint32_t>(body.size()));
    if (!body.empty()) std::memcpy(p + frame_format::header_size, body.data(), body.size());
    std::uint32_t crc = distkit::detail::crc32c(p, frame_format::crc_offset);
    crc = distkit::detail::crc32c(p + frame_format::header_size, body.size(), crc);
    distkit::detail::store_le<std::uint32_t>(p + frame_format::crc_offset, crc);
    if (hmac_) {
      const std::size_t signed_size = frame_format::header_size + body.size();
      hmac_->compute(p, signed_size, p + signed_size);
    }
    return sequence;
  }

  std::uint64_t cluster_id_;
  frame_node_id from_;
  std::uint64_t next_sequence_;
  std::optional<internal::hmac_sha256> hmac_;
  std::uint16_t key_id_ = 0;  // written in signed frames
};

/// @brief Counters of a decoder: frames accepted and frames refused, per reason.
///
/// **Thread safety:** counters are atomics; read them from any thread.
class frame_stats {
 public:
  [[nodiscard]] auto accepted() const noexcept -> std::uint64_t { return accepted_.load(std::memory_order_relaxed); }
  [[nodiscard]] auto refused(frame_error_kind kind) const noexcept -> std::uint64_t {
    return refused_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
  }
  [[nodiscard]] auto refused_total() const noexcept -> std::uint64_t {
    std::uint64_t total = 0;
    for (std::size_t i = 1; i < frame_error_kind_count; ++i) total += refused_[i].load(std::memory_order_relaxed);
    return total;
  }
  void count_accepted() noexcept { accepted_.fetch_add(1, std::memory_order_relaxed); }
  void count(frame_error_kind kind) noexcept {
    refused_[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> accepted_{0};
  std::array<std::atomic<std::uint64_t>, frame_error_kind_count> refused_{};
};

/// @brief What a receiving node accepts.
struct frame_decoder_options {
  std::uint64_t cluster_id = 0;
  /// This node; frames addressed to another node are refused.
  frame_node_id node_id = 0;
  /// Senders accepted. Empty: any sender other than this node.
  std::vector<frame_node_id> peers{};
  /// Largest body accepted; a longer length prefix is refused before anything is allocated.
  std::size_t max_body = frame_format::default_max_body;
  /// With a key, every frame must carry a valid HMAC-SHA256; without, a signed frame is refused
  /// (a configuration mismatch between nodes).
  std::optional<frame_key> key{};
  /// Instead of `key`: every key a sender may sign with, by id (a frame names its key's id; an
  /// id not in the ring is refused as `unknown_key`). Takes precedence over `key`.
  std::optional<frame_keyring> keyring{};
};
/// Deprecated: the former name of `frame_decoder_options`.
using frame_decoder_config [[deprecated("use frame_decoder_options")]] = frame_decoder_options;

/// @brief Verifies frames addressed to one node, counting every refusal.
///
/// Use `check_header` on the first 40 bytes (it bounds what to read next: `trailer_size()`),
/// then `check_frame` on header and trailer; or `try_decode` / `decode` on a whole buffer.
///
/// **Thread safety:** none for checking (it owns an HMAC context and the replay table); `stats()`
/// may be read from any thread.
/// **Complexity:** O(frame size) per frame; the replay table holds one entry per sender.
/// @code
/// auto key = distkit::paxos::frame_key::from_file("/etc/kv/cluster.key");
/// std::vector<std::byte> wire;  // bytes received from a peer
/// distkit::paxos::frame_decoder dec({.cluster_id = 7, .node_id = 2, .peers = {1, 3}, .key = key});
/// auto frame = dec.decode(wire);  // throws distkit::paxos::frame_error on any refusal
/// @endcode
class frame_decoder {
 public:
  /// A decoded frame; `body` points into the caller's buffer.
  struct decoded {
    frame_header header;
    std::span<const std::byte> body;
    std::size_t size = 0;  ///< bytes of the whole frame, header through MAC
  };
  struct result {
    frame_error_kind error = frame_error_kind::none;
    decoded frame;
    [[nodiscard]] auto ok() const noexcept -> bool { return error == frame_error_kind::none; }
  };

  /// @throws std::invalid_argument if `max_body` is 0 or above 1 GiB.
  explicit frame_decoder(frame_decoder_options config) : config_(std::move(config)) {
    if (config_.max_body == 0 || config_.max_body > frame_format::max_body_limit) {
      distkit::detail::throw_invalid_argument("paxos::frame_decoder", "max_body", "must be in [1, 2^30]",
                                              std::to_string(config_.max_body));
    }
    if (config_.keyring && !config_.keyring->empty()) {
      hmacs_ = hmacs_of(*config_.keyring);
    } else if (config_.key) {
      hmacs_.emplace(std::uint16_t{0}, internal::hmac_sha256(*config_.key));
    }
  }

  /// Accepts frames signed with any key of `keys` from now on (for a key rotation). A
  /// decoder that was configured unsigned stays unsigned, and a keyed one keyed.
  /// @throws std::invalid_argument naming `keyring` if that would change.
  void rekey(const frame_keyring& keys) {
    if (keys.empty() != hmacs_.empty()) {
      distkit::detail::throw_invalid_argument(
          "paxos::frame_decoder", "keyring",
          "must stay empty for an unsigned decoder and not become empty for a signed one");
    }
    hmacs_ = hmacs_of(keys);
  }

  /// Checks the fixed header (no allocation, no trust in the length before the cap is applied).
  /// Counts and returns the refusal reason, or `none`.
  auto check_header(std::span<const std::byte> bytes, frame_header& header) -> frame_error_kind {
    return check_header(bytes, header, config_.max_body);
  }

  /// As above with a tighter body bound `max_body` (at most the configured one), for example
  /// for a connection that has not yet shown an authentic frame.
  auto check_header(std::span<const std::byte> bytes, frame_header& header, std::size_t max_body) -> frame_error_kind {
    if (bytes.size() < frame_format::header_size) return refuse(frame_error_kind::truncated);
    const std::byte* p = bytes.data();
    if (distkit::detail::load_le<std::uint32_t>(p) != frame_format::magic) return refuse(frame_error_kind::bad_magic);
    if (std::to_integer<std::uint8_t>(p[4]) != frame_format::version) return refuse(frame_error_kind::bad_version);
    header.flags = std::to_integer<std::uint8_t>(p[5]);
    constexpr auto known_flags = static_cast<std::uint8_t>(frame_format::flag_mac | frame_format::flag_hello);
    header.key_id = distkit::detail::load_le<std::uint16_t>(p + 6);
    if ((header.flags & ~known_flags) != 0 || (!header.has_mac() && header.key_id != 0)) {
      return refuse(frame_error_kind::bad_flags);
    }
    header.cluster_id = distkit::detail::load_le<std::uint64_t>(p + 8);
    header.from = distkit::detail::load_le<std::uint32_t>(p + 16);
    header.to = distkit::detail::load_le<std::uint32_t>(p + 20);
    header.sequence = distkit::detail::load_le<std::uint64_t>(p + 24);
    header.body_length = distkit::detail::load_le<std::uint32_t>(p + 32);
    header.crc = distkit::detail::load_le<std::uint32_t>(p + frame_format::crc_offset);
    if (header.body_length > std::min(max_body, config_.max_body)) return refuse(frame_error_kind::oversized);
    if (header.is_hello() && header.body_length != frame_format::challenge_size) {
      return refuse(frame_error_kind::bad_flags);
    }
    if (header.cluster_id != config_.cluster_id) return refuse(frame_error_kind::wrong_cluster);
    if (header.to != config_.node_id) return refuse(frame_error_kind::wrong_receiver);
    if (!known_sender(header.from)) return refuse(frame_error_kind::unknown_sender);
    if (!hmacs_.empty() && !header.has_mac()) return refuse(frame_error_kind::missing_mac);
    if (hmacs_.empty() && header.has_mac()) return refuse(frame_error_kind::bad_flags);
    if (!hmacs_.empty() && !hmacs_.contains(header.key_id)) return refuse(frame_error_kind::unknown_key);
    return frame_error_kind::none;
  }

  /// Checks a whole frame whose header already passed `check_header`: `frame` holds the header
  /// followed by at least `trailer_size()` bytes. On success the sender's sequence advances.
  auto check_frame(const frame_header& header, std::span<const std::byte> frame) -> frame_error_kind {
    if (auto integrity = check_integrity(header, frame); integrity != frame_error_kind::none) return integrity;
    // Only an intact (and, when keyed, authentic) frame may move the replay window.
    auto [it, inserted] = last_sequence_.try_emplace(header.from, header.sequence);
    if (!inserted) {
      if (header.sequence <= it->second) return refuse(frame_error_kind::replayed);
      it->second = header.sequence;
    }
    stats_.count_accepted();
    return frame_error_kind::none;
  }

  /// Checks a connection's first frame (header already passed `check_header`): it must be an
  /// intact, authentic hello whose body is `challenge`, the bytes this receiver sent on the
  /// connection. On success the sender's replay window restarts at the hello's sequence number:
  /// from here on its frames are checked against this connection (one per sender at a time).
  auto check_hello(const frame_header& header, std::span<const std::byte> frame, std::span<const std::byte> challenge)
      -> frame_error_kind {
    if (auto integrity = check_integrity(header, frame); integrity != frame_error_kind::none) return integrity;
    if (!header.is_hello() || header.body_length != challenge.size() ||
        std::memcmp(frame.data() + frame_format::header_size, challenge.data(), challenge.size()) != 0) {
      return refuse(frame_error_kind::bad_hello);
    }
    last_sequence_[header.from] = header.sequence;
    stats_.count_accepted();
    return frame_error_kind::none;
  }

 private:
  auto check_integrity(const frame_header& header, std::span<const std::byte> frame) -> frame_error_kind {
    const std::size_t needed = frame_format::header_size + header.trailer_size();
    if (frame.size() < needed) return refuse(frame_error_kind::truncated);
    const std::byte* p = frame.data();
    std::uint32_t crc = distkit::detail::crc32c(p, frame_format::crc_offset);
    crc = distkit::detail::crc32c(p + frame_format::header_size, header.body_length, crc);
    if (crc != header.crc) return refuse(frame_error_kind::bad_checksum);
    if (!hmacs_.empty()) {
      auto hmac = hmacs_.find(header.key_id);
      if (hmac == hmacs_.end()) return refuse(frame_error_kind::unknown_key);
      const std::size_t signed_size = frame_format::header_size + header.body_length;
      std::array<std::byte, frame_format::mac_size> expected{};
      hmac->second.compute(p, signed_size, expected.data());
      if (CRYPTO_memcmp(expected.data(), p + signed_size, frame_format::mac_size) != 0) {
        return refuse(frame_error_kind::bad_mac);
      }
    }
    return frame_error_kind::none;
  }

 public:
  /// Decodes the first frame of `bytes` without throwing.
  auto try_decode(std::span<const std::byte> bytes) -> result {
    result r;
    r.error = check_header(bytes, r.frame.header);
    if (r.error != frame_error_kind::none) return r;
    r.error = check_frame(r.frame.header, bytes);
    if (r.error != frame_error_kind::none) return r;
    r.frame.body = bytes.subspan(frame_format::header_size, r.frame.header.body_length);
    r.frame.size = frame_format::header_size + r.frame.header.trailer_size();
    return r;
  }

  /// Decodes the first frame of `bytes`.
  /// @throws frame_error (a `corrupt_data_error`) naming the reason of a refusal.
  auto decode(std::span<const std::byte> bytes) -> decoded {
    auto r = try_decode(bytes);
    if (!r.ok()) throw frame_error(r.error);
    return r.frame;
  }

  /// Forgets a sender's sequence number (never needed in normal operation: a restarted sender
  /// starts above its old numbers).
  void reset_sequence(frame_node_id from) { last_sequence_.erase(from); }

  [[nodiscard]] auto stats() const noexcept -> const frame_stats& { return stats_; }
  [[nodiscard]] auto config() const noexcept -> const frame_decoder_options& { return config_; }

 private:
  auto refuse(frame_error_kind kind) noexcept -> frame_error_kind {
    stats_.count(kind);
    return kind;
  }
  [[nodiscard]] auto known_sender(frame_node_id from) const noexcept -> bool {
    if (from == config_.node_id) return false;
    if (config_.peers.empty()) return true;
    return std::find(config_.peers.begin(), config_.peers.end(), from) != config_.peers.end();
  }

  frame_decoder_options config_;
  static auto hmacs_of(const frame_keyring& keys) -> std::map<std::uint16_t, internal::hmac_sha256> {
    std::map<std::uint16_t, internal::hmac_sha256> out;
    for (const auto& [id, key] : keys.keys()) out.emplace(id, internal::hmac_sha256(key));
    return out;
  }

  std::map<std::uint16_t, internal::hmac_sha256> hmacs_;  // by key id; empty: unsigned frames
  std::unordered_map<frame_node_id, std::uint64_t> last_sequence_;
  frame_stats stats_;
};

}  // namespace distkit::inline v0::paxos
