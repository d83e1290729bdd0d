// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg: hand each message of an accelerated socket straight to its peer's
 * receive queue, skipping the TCP/IP stack (both ends are on this node).
 * Runs for every sendmsg/sendfile/splice on a socket in mw_sock_hash (IPv4
 * connections, v4-mapped ones included) or mw_sock_hash6 (native IPv6); see
 * lib/meshwire_accel.h for when a message goes through TCP instead, and why.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_policy.h"
#include "lib/meshwire_accel.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/*
 * One more message of a hop whose connecting end learns (MW_ACCEL_CONNECT;
 * `hop` is that end's entry, this socket's own or its peer's): counted up to
 * one past MW_ACCEL_SHORT_MSGS, so a long-lived hop pays a plain read per
 * message, not an atomic add. Atomic: both ends' sk_msg add to it.
 */
static __always_inline void mw_skmsg_count(struct mw_accel_state *hop)
{
	if (mw_cfg.accel_short != MW_ACCEL_SHORT_LEARN ||
	    !(*(volatile __u32 *)&hop->flags & MW_ACCEL_CONNECT))
		return;
	if (*(volatile __u32 *)&hop->msgs <= MW_ACCEL_SHORT_MSGS)
		__sync_fetch_and_add(&hop->msgs, 1);
}

/* Through TCP from now on (see MW_ACCEL_TCP_TX). */
static __always_inline int mw_skmsg_pass(struct mw_accel_state *own)
{
	bpf_spin_lock(&own->lock);
	own->flags |= MW_ACCEL_TCP_TX;
	bpf_spin_unlock(&own->lock);
	return SK_PASS;
}

/* Set or clear MW_ACCEL_LAG (the peer's sk_msg sets MW_ACCEL_RX in the same word). */
static __always_inline void mw_skmsg_lag(struct mw_accel_state *own, const int lag)
{
	bpf_spin_lock(&own->lock);
	if (lag)
		own->flags |= MW_ACCEL_LAG;
	else
		own->flags &= ~MW_ACCEL_LAG;
	bpf_spin_unlock(&own->lock);
}

/*
 * A bulk sender leaves acceleration if nothing was ever redirected to it
 * (lib/meshwire_accel.h): under its lock, as the FIN path in sockops, it
 * sets MW_ACCEL_CLOSING (its peer never redirects to it from now on, so
 * taking it out of the map loses nothing), MW_ACCEL_TCP_TX (it sends
 * through TCP, after the redirected bytes its peer reads first) and
 * MW_ACCEL_LEAVE (sockops takes it out of the map at its next ACK: sk_msg
 * cannot delete from a sockhash). 1 if it left.
 */
static __always_inline int mw_skmsg_leave(struct mw_accel_state *own)
{
	int left = 0;

	bpf_spin_lock(&own->lock);
	if (!(own->flags & MW_ACCEL_RX)) {
		own->flags |= MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE;
		left = 1;
	}
	bpf_spin_unlock(&own->lock);
	return left;
}

/* The peer's unread redirected bytes, through its psock's address. */
static __always_inline __u32 mw_skmsg_backlog(__u64 psock)
{
	__u32 len = 0;

	if (!mw_kernel_has(((struct sk_psock___mwa *)0)->msg_tot_len))
		return 0;
	bpf_probe_read_kernel(&len, sizeof(len), &((struct sk_psock___mwa *)psock)->msg_tot_len);
	return len;
}

/*
 * Must this message go through TCP because the peer is behind (and for how
 * long: lib/meshwire_accel.h)? 1 for good once the peer holds
 * MW_ACCEL_BULK_MIN unread redirected bytes and nothing was ever redirected
 * to this socket (a bulk sender: it leaves acceleration). Otherwise 1 while
 * the peer holds MW_ACCEL_BACKLOG_MAX
 * unread redirected bytes or more, and after that until the peer has read
 * every byte this socket sent through TCP meanwhile. 0 when nothing is known
 * of the peer's psock (no bound, as before). The psock address comes with
 * the peer's state entry (sockops wrote it there).
 */
static __always_inline int mw_skmsg_peer_behind(struct sk_msg_md *msg, struct mw_accel_state *own,
						const struct mw_accel_state *peer_state)
{
	__u64 psock = *(const volatile __u64 *)&peer_state->psock;
	struct tcp_sock___mwa *tp;
	__u32 read = 0;
	void *peer_sk = NULL;

	if (!psock)
		return 0;
	if (!(own->flags & MW_ACCEL_LAG)) {
		__u32 backlog = mw_skmsg_backlog(psock);

		if (backlog >= MW_ACCEL_BULK_MIN && !(own->flags & MW_ACCEL_RX) && mw_skmsg_leave(own)) {
			mw_count(MW_STAT_ACCEL_BULK);
			return 1;
		}
		if (backlog < MW_ACCEL_BACKLOG_MAX)
			return 0;
		mw_skmsg_lag(own, 1);
		mw_count(MW_STAT_ACCEL_LAGGED);
		return 1;
	}
	/* Behind until the peer read all we sent through TCP, and caught up. */
	tp = msg->sk ? (struct tcp_sock___mwa *)bpf_skc_to_tcp_sock(msg->sk) : NULL;
	if (!tp)
		return 1;
	bpf_probe_read_kernel(&peer_sk, sizeof(peer_sk), &((struct sk_psock___mwa *)psock)->sk);
	if (!peer_sk)
		return 1;
	bpf_probe_read_kernel(&read, sizeof(read), &((struct tcp_sock___mwa *)peer_sk)->copied_seq);
	if (read != tp->write_seq || mw_skmsg_backlog(psock) >= MW_ACCEL_BACKLOG_MAX)
		return 1;
	mw_skmsg_lag(own, 0);
	return 0;
}

/*
 * A message of an accelerated socket, in its family's maps (is6: native
 * IPv6; otherwise IPv4, v4-mapped sockets included).
 */
static __always_inline int mw_skmsg_verdict(struct sk_msg_md *msg, const int is6)
{
	struct mw_accel_state *own, *peer_state;
	union mw_accel_key key, peer;
	int redirect = 0;

	/* Our own key, as sockops computed it, and our peer's. */
	mw_accel_keys(msg, is6, &key, &peer);

	own = bpf_map_lookup_elem(mw_accel_state_map(is6), &key);
	if (!own)
		return SK_PASS;
	mw_skmsg_count(own);
	if (own->flags & MW_ACCEL_TCP_TX)
		return SK_PASS;

	peer_state = bpf_map_lookup_elem(mw_accel_state_map(is6), &peer);
	if (!peer_state)
		return mw_skmsg_pass(own);
	mw_skmsg_count(peer_state);
	/* The peer is behind: through TCP, which holds the sender back, for now. */
	if (mw_skmsg_peer_behind(msg, own, peer_state))
		return SK_PASS;
	/*
	 * The lock decides the peer's first redirect against its FIN. Once it
	 * has MW_ACCEL_RX (never cleared) its sockops keeps it in the map, so
	 * the later messages read the flags without the lock: a CLOSING set
	 * meanwhile is the race the lock leaves open too (it is released
	 * before the redirect).
	 */
	if ((*(volatile __u32 *)&peer_state->flags & (MW_ACCEL_RX | MW_ACCEL_CLOSING)) == MW_ACCEL_RX) {
		redirect = 1;
	} else {
		bpf_spin_lock(&peer_state->lock);
		if (!(peer_state->flags & MW_ACCEL_CLOSING)) {
			peer_state->flags |= MW_ACCEL_RX;
			redirect = 1;
		}
		bpf_spin_unlock(&peer_state->lock);
	}

	if (redirect &&
	    bpf_msg_redirect_hash(msg, mw_accel_sock_map(is6), &peer, BPF_F_INGRESS) == SK_PASS)
		return SK_PASS;
	/* No redirect recorded: SK_PASS sends the message the normal way. */
	return mw_skmsg_pass(own);
}

SEC("sk_msg")
int mw_skmsg_redirect(struct sk_msg_md *msg)
{
	if (mw_conn_is_ip4(msg))
		return mw_skmsg_verdict(msg, 0);
	if (msg->family == MW_AF_INET6)
		return mw_skmsg_verdict(msg, 1);
	return SK_PASS;
}
