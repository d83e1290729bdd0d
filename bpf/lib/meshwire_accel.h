/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Acceleration (sockops fills mw_sock_hash, sk_msg redirects each message to
 * the peer's receive queue): the state both programs share, and why it exists.
 *
 * A socket in a sockmap reads through the kernel's tcp_bpf_recvmsg(), and on
 * Linux 6.18 (and bpf-next as of 2026) that function has two defects that
 * the datapath must work around (test/accel_e2e.sh shows both):
 *
 *  1. A blocking recv() returns EAGAIN on any wake-up that brings no data,
 *     instead of waiting out its timeout: tcp_msg_wait_data() returns 0 and
 *     tcp_bpf_recvmsg() turns that into -EAGAIN. The wake-up every half-close
 *     produces is the peer's ACK of our FIN (FIN_WAIT1 -> FIN_WAIT2 calls
 *     sk_state_change). So "send, shutdown(SHUT_WR), read the reply" fails
 *     with EAGAIN whenever the reply comes after that ACK. A signal does the
 *     same (even with SA_RESTART), and so does a reset (EAGAIN, not
 *     ECONNRESET).
 *  2. Taking a socket out of the map drops what was redirected to it and not
 *     read yet: sk_psock_drop() -> sk_psock_destroy() purges ingress_msg. So
 *     a socket may only leave the map early if nothing was ever redirected to
 *     it, and nothing can be any more.
 *
 * What the datapath does:
 *
 *  - When a socket sends its FIN (state FIN_WAIT1, from shutdown() or close(),
 *    before the application can read again; LAST_ACK after the peer's FIN),
 *    it takes itself out of mw_sock_hash if nothing was ever redirected to
 *    it: its reads are then the plain tcp_recvmsg() with correct blocking
 *    semantics. It also marks itself closing, and from then on its peer sends
 *    to it through TCP. It sends nothing more, so its mw_accel_state entry
 *    goes too (a peer that finds no entry sends through TCP, as to a closing
 *    socket) and it asks for no more sockops callbacks: a short connection's
 *    later state changes and the ACK of its FIN cost no program run.
 *  - Whether "something was redirected to X" and "X is closing" are decided
 *    under one spin lock in X's mw_accel_state entry: the peer's sk_msg sets
 *    MW_ACCEL_RX before it redirects, unless MW_ACCEL_CLOSING is set; X's
 *    sockops sets MW_ACCEL_CLOSING and leaves the map only if MW_ACCEL_RX was
 *    not set. So a redirect in flight always finds X still in the map
 *    (nothing is lost), and after X leaves nothing is redirected to it.
 *    MW_ACCEL_RX is never cleared: once it is set, the peer's later
 *    messages read X's flags without the lock (bpf_skmsg.c).
 *  - A socket that sent even one message through TCP (its peer was not in the
 *    map yet, was never accelerated, or was closing) keeps sending through
 *    TCP (MW_ACCEL_TCP_TX): the peer reads its ingress queue before its TCP
 *    queue, so mixing the two ways would reorder the stream.
 *
 * A redirect has no backpressure: bpf_tcp_ingress() charges the peer's
 * memory but never checks its receive buffer, so a writer faster than its
 * reader queues without bound (what it writes is copied once more and may
 * never be read: at the end of a two-node iperf3 run the client had written
 * 1.4-1.9x what the server received). A sidecar whose next hop is TCP across
 * nodes is such a reader. So the datapath bounds it:
 *
 *  - sockops records each accelerated socket's psock address in its
 *    mw_accel_state entry (psock) when it enters the map; the peer's sk_msg,
 *    which looks that entry up anyway, reads the socket's unread redirected
 *    bytes through it
 *    (sk_psock.msg_tot_len, bpf_probe_read_kernel: a stale address reads
 *    garbage, never faults; a kernel without the field has no bound).
 *  - A message whose peer holds MW_ACCEL_BACKLOG_MAX unread bytes or more
 *    goes through TCP (SK_PASS), and the sender is in MW_ACCEL_LAG: TCP's
 *    window holds it back as it would without acceleration. The peer reads
 *    its ingress queue first, which holds only older bytes: order is kept.
 *  - In MW_ACCEL_LAG it redirects again only once the peer has read every
 *    byte it sent through TCP (the peer's copied_seq equals its write_seq:
 *    nothing of it is in flight or in the peer's TCP queue; the sender holds
 *    its socket lock, so no byte of its own can slip in between), and the
 *    backlog is under the bound again. A redirect then cannot overtake.
 *
 * A redirect does not gain on bulk (a writer redirecting to a busy reader
 * waits for the reader's socket lock at every message), and a socket in the
 * map that sends through TCP pays tcp_bpf's copy into an sk_msg on top of
 * TCP. So a bulk sender leaves acceleration for good:
 *
 *  - when the peer holds MW_ACCEL_BULK_MIN unread redirected bytes and
 *    nothing was ever redirected to the sender (no MW_ACCEL_RX), sk_msg sets
 *    MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE under the sender's
 *    lock: the same lock decides it against the peer's first redirect, as
 *    at a FIN, so nothing is ever redirected to it afterwards (the peer sends
 *    through TCP for good) and the message goes through TCP (order: the peer
 *    reads its redirected bytes first).
 *  - sk_msg cannot delete from a sockhash; sockops can, at the next ACK of
 *    the sender's TCP data (BPF_SOCK_OPS_RTT_CB, asked for when a socket
 *    enters the map; a redirecting socket sends no TCP data, so none comes
 *    while it redirects): it takes the socket out of the map (plain TCP
 *    from then on), zeroes its psock address and asks for no more RTT
 *    callbacks. Its ingress queue is empty and stays so: nothing was ever
 *    redirected to it.
 *  - a sender that was sent to cannot leave (its psock holds what it has
 *    not read yet; dropping the psock drops that): the bound above holds.
 *
 * So a hop whose reader keeps up (request/response, a reader that is not
 * the bottleneck) stays accelerated, a sender whose reader cannot keep up
 * runs as plain TCP (or, if it was sent to, as TCP in the map costs).
 *
 * Short connections (acceleration.short_connections = "learn"): a socket in
 * a sockmap costs a psock, a proto swap, its removal and the psock's deferred
 * destruction, more than a request or two saves, and a socket can enter the
 * map only when it is established. So the hop's connecting end decides from
 * its destination's history (mw_accel_hints, keyed by its pod and the hop's
 * destination: an app's original one, marked MW_ACCEL_HINT_F_ORIG, or the
 * hop's remote address), looked up first, before the pod and mesh-hop checks
 * (a hint exists only for a hop that passed them):
 *
 *  - it enters with MW_ACCEL_CONNECT; both ends' sk_msg count the hop's
 *    messages in its entry (msgs, atomic: two writers; not in flags, which
 *    the peer writes under the lock), up to MW_ACCEL_SHORT_MSGS + 1;
 *  - at its FIN it reports: at most MW_ACCEL_SHORT_MSGS and never behind
 *    (MW_ACCEL_LAG, MW_ACCEL_LEAVE) is short (the hint's run grows, up to
 *    MW_ACCEL_SHORT_RUN, its time is now), anything else resets the run;
 *  - a connecting end whose destination has a full run and a short report
 *    younger than MW_ACCEL_HINT_WINDOW_NS stays out (accel_skipped_short);
 *    its peer follows. Unaccelerated hops report nothing, so after the
 *    window the next one is accelerated again and reports (a probe).
 *
 * What is left (docs/acceleration.md says what it means for apps; no BPF program can reach these):
 *  - a read already waiting inside tcp_bpf_recvmsg() when another thread
 *    half-closes the same socket (a thread-per-direction relay) gets the
 *    EAGAIN of (1) if the peer's ACK of that FIN comes before data: leaving
 *    the map does not help a call that is already running;
 *  - a socket that received redirected data and then half-closes stays in
 *    the map, so its blocking reads can get that EAGAIN until its FIN is
 *    ACKed (the peer's later data goes through TCP and carries the ACK, so
 *    only a pure ACK while the reader waits does it);
 *  - a blocked read interrupted by a signal returns EAGAIN;
 *  - splice(2) from an accelerated socket does not see redirected data
 *    (tcp_splice_read() reads only the TCP receive queue).
 */
#ifndef MESHWIRE_ACCEL_H
#define MESHWIRE_ACCEL_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "meshwire_maps.h"
#include "meshwire_policy.h"

/*
 * struct mw_accel_state and MW_ACCEL_* are in meshwire_structs.h and
 * meshwire_consts.h, the maps in meshwire_maps.h.
 *
 * Each family has its maps: an IPv4 connection (AF_INET, or AF_INET6 on
 * v4-mapped addresses) is keyed by struct mw_sock_key in mw_sock_hash and
 * mw_accel_state, so a dual-stack app's v4-mapped socket and its sidecar's
 * IPv4 socket are each other's peers; a native IPv6 one by struct
 * mw_sock6_key in mw_sock_hash6 and mw_accel_state6. Everything above holds
 * for both; the programs pick the maps with mw_accel_sock_map and
 * mw_accel_state_map.
 */
union mw_accel_key {
	struct mw_sock_key k4;
	struct mw_sock6_key k6;
};

#define mw_accel_sock_map(is6)	((is6) ? (void *)&mw_sock_hash6 : (void *)&mw_sock_hash)
#define mw_accel_state_map(is6)	((is6) ? (void *)&mw_accel_state6 : (void *)&mw_accel_state)

/*
 * The kernel's tcp_sock (down to struct sock's sk_user_data, which holds a
 * socket's psock in a sockmap) and sk_psock, only the fields read: CO-RE
 * relocates them against the running kernel's BTF (MW_CORE).
 */
struct sock___mwa {
	void *sk_user_data;
} MW_CORE;
struct inet_sock___mwa {
	struct sock___mwa sk;
} MW_CORE;
struct inet_connection_sock___mwa {
	struct inet_sock___mwa icsk_inet;
} MW_CORE;
struct tcp_sock___mwa {
	struct inet_connection_sock___mwa inet_conn;
	__u32 write_seq;	/* the next byte queued for TCP */
	__u32 copied_seq;	/* the next byte the application reads from TCP */
} MW_CORE;
struct sk_psock___mwa {
	void *sk;
	__u32 msg_tot_len;	/* redirected bytes in its ingress queue, unread */
} MW_CORE;

/* sk_user_data's flag bits (SK_USER_DATA_NOCOPY, _BPF, _PSOCK): the rest is the psock. */
#define MW_SK_USER_DATA_PTRMASK	(~7ULL)

#ifdef __bpf__
#include <bpf/bpf_core_read.h>
#define mw_kernel_has(field)	bpf_core_field_exists(field)
#else
#define mw_kernel_has(field)	1
#endif

/*
 * A socket's key in its family's maps, seen from itself (own), and its
 * peer's: the same connection seen from the other end (local and remote
 * swapped). Ports in host order (remote_port is network order in the upper
 * 16 bits on little endian, as bpf_sock_ops and sk_msg_md give it); the
 * netns cookie only over loopback, where every pod has its own 127.0.0.1 and
 * ::1 (pod addresses are unique on the node). Use mw_accel_keys().
 */
static __always_inline void mw_accel_keys_of(void *ctx, const int is6,
					     const volatile __u32 *local6,
					     const volatile __u32 *remote6,
					     __u32 local4, __u32 remote4, __u32 local_port,
					     __u32 remote_port_n, union mw_accel_key *own,
					     union mw_accel_key *peer)
{
	__u32 remote_port = bpf_ntohl(remote_port_n);

	if (is6) {
		__u32 l[4] = { local6[0], local6[1], local6[2], local6[3] };
		__u32 r[4] = { remote6[0], remote6[1], remote6[2], remote6[3] };
		__u64 cookie = mw_is_loopback6(r) ? bpf_get_netns_cookie(ctx) : 0;

		own->k6.netns_cookie = peer->k6.netns_cookie = cookie;
		__builtin_memcpy(own->k6.local_ip6, l, sizeof(l));
		__builtin_memcpy(own->k6.remote_ip6, r, sizeof(r));
		__builtin_memcpy(peer->k6.local_ip6, r, sizeof(r));
		__builtin_memcpy(peer->k6.remote_ip6, l, sizeof(l));
		own->k6.local_port = peer->k6.remote_port = local_port;
		own->k6.remote_port = peer->k6.local_port = remote_port;
		return;
	}
	own->k4.netns_cookie = peer->k4.netns_cookie =
		mw_is_loopback4(remote4) ? bpf_get_netns_cookie(ctx) : 0;
	own->k4.local_ip4 = peer->k4.remote_ip4 = local4;
	own->k4.remote_ip4 = peer->k4.local_ip4 = remote4;
	own->k4.local_port = peer->k4.remote_port = local_port;
	own->k4.remote_port = peer->k4.local_port = remote_port;
}

#define mw_accel_keys(ctx, is6, own, peer)					\
	mw_accel_keys_of((ctx), (is6), (ctx)->local_ip6, (ctx)->remote_ip6,	\
			 (ctx)->local_ip4, (ctx)->remote_ip4, (ctx)->local_port,	\
			 (ctx)->remote_port, (own), (peer))

#endif /* MESHWIRE_ACCEL_H */
