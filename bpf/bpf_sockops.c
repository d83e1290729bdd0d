// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops: carry a redirected connection's original destination from the
 * application's socket to the sidecar's accepted socket.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_policy.h"
#include "lib/meshwire_accel.h"
#include "lib/meshwire_trace.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/*
 * Every pod has its own 127.0.0.1, so a loopback connection is told apart by
 * its netns cookie. Pod addresses are unique on the node, and an inbound
 * connection's two ends sit in different namespaces: no cookie there.
 */
static __always_inline __u64 mw_tuple4_scope(struct bpf_sock_ops *skops,
					     __u32 server_ip4)
{
	return mw_is_loopback4(server_ip4) ? bpf_get_netns_cookie(skops) : 0;
}

/* The connection seen from its client (the application) side. */
static __always_inline void mw_tuple4_from_client(struct bpf_sock_ops *skops,
						  struct mw_tuple4 *key)
{
	key->client_ip4 = skops->local_ip4;
	key->client_port = (__u16)skops->local_port;
	key->server_ip4 = skops->remote_ip4;
	key->server_port = (__u16)bpf_ntohl(skops->remote_port);
	key->pad = 0;
	key->netns_cookie = mw_tuple4_scope(skops, key->server_ip4);
}

/* The same connection seen from the sidecar's accepted socket. */
static __always_inline void mw_tuple4_from_server(struct bpf_sock_ops *skops,
						  struct mw_tuple4 *key)
{
	key->client_ip4 = skops->remote_ip4;
	key->client_port = (__u16)bpf_ntohl(skops->remote_port);
	key->server_ip4 = skops->local_ip4;
	key->server_port = (__u16)skops->local_port;
	key->pad = 0;
	key->netns_cookie = mw_tuple4_scope(skops, key->server_ip4);
}

/*
 * A connection's origin is published. The socket keeps its storage (freed
 * with it) so getpeername() can still answer the dialled address. Ask for
 * the close callback, so an entry never accepted is removed.
 */
static __always_inline void mw_sockops_published(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					 BPF_SOCK_OPS_STATE_CB_FLAG);
	mw_count(MW_STAT_SOCKOPS_TUPLE_ADDED);
}

/*
 * The socket's storage of its family (struct mw_orig4 or mw_orig6: what
 * earlier hooks left on it), NULL for none. Read once per callback and
 * handed to what needs it (publish, the hint's key, the close callback's
 * question): a storage lookup is cheap, not free.
 */
static __always_inline void *mw_sockops_orig(struct bpf_sock_ops *skops, const int is6)
{
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return NULL;
	return is6 ? bpf_sk_storage_get(&mw_orig6_sk, sk, NULL, 0) :
		     bpf_sk_storage_get(&mw_orig_sk, sk, NULL, 0);
}

/* The app's connect() to the sidecar is established: publish its origin (orig: its storage). */
static __always_inline void mw_sockops_publish(struct bpf_sock_ops *skops,
					       const struct mw_orig4 *orig)
{
	struct mw_orig4 val;
	struct mw_tuple4 key;

	if (!orig || !(orig->flags & MW_ORIG_F_CONNECT))
		return;

	val = *orig;
	mw_tuple4_from_client(skops, &key);
	if (bpf_map_update_elem(&mw_orig_tuple4, &key, &val, BPF_ANY)) {
		mw_count(MW_STAT_SOCKOPS_ERROR);
		return;
	}
	mw_sockops_published(skops);
	mw_trace("sockops published %pI4:%d", &val.ip4, bpf_ntohs(val.port));
	mw_emit(MW_HOOK_SOCKOPS, MW_DEC_SOCKOPS_PUBLISHED, bpf_get_netns_cookie(skops),
		key.client_ip4, key.client_port, val.ip4, bpf_ntohs(val.port),
		key.server_ip4, key.server_port, MW_EV_NO_TASK);
}

static __always_inline int mw_sockops_store_accepted(struct bpf_sock *sk,
						     __u32 ip4, __u16 port)
{
	struct mw_orig4 *stored;

	stored = bpf_sk_storage_get(&mw_orig_sk, sk, NULL,
				    BPF_SK_STORAGE_GET_F_CREATE);
	if (!stored) {
		mw_count(MW_STAT_SOCKOPS_ERROR);
		return -1;
	}
	stored->ip4 = ip4;
	stored->port = port;
	stored->flags = MW_ORIG_F_ACCEPTED;
	mw_count(MW_STAT_SOCKOPS_ACCEPT_BOUND);
	return 0;
}

/* An inbound flow from another node that tc ingress steered to the sidecar. */
static __always_inline void mw_sockops_bind_flow(struct bpf_sock_ops *skops,
						 struct bpf_sock *sk)
{
	struct mw_flow4_key key = {
		.remote_ip4 = skops->remote_ip4,
		.local_ip4 = skops->local_ip4,
		.remote_port = bpf_htons((__u16)bpf_ntohl(skops->remote_port)),
	};
	struct mw_flow4 *flow;

	flow = bpf_map_lookup_elem(&mw_flow4, &key);
	if (flow)
		mw_sockops_store_accepted(sk, skops->local_ip4, flow->orig_port);
}

/* The sidecar accepted a redirected connection: bind the origin to it. */
static __always_inline void mw_sockops_bind_accepted(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct mw_orig4 *orig;
	struct mw_tuple4 key;

	if (!sk || !mw_is_steered_port((__u16)skops->local_port))
		return;

	mw_tuple4_from_server(skops, &key);
	orig = bpf_map_lookup_elem(&mw_orig_tuple4, &key);
	if (orig) {
		if (!mw_sockops_store_accepted(sk, orig->ip4, orig->port))
			bpf_map_delete_elem(&mw_orig_tuple4, &key);
		return;
	}
	if (skops->local_port == mw_cfg.inbound_port)
		mw_sockops_bind_flow(skops, sk);
}

/* The MW_ORIG_F_* flags of a socket's storage (mw_sockops_orig), 0 for none. */
static __always_inline __u16 mw_sockops_orig_flags(const void *orig, const int is6)
{
	if (!orig)
		return 0;
	return is6 ? ((const struct mw_orig6 *)orig)->flags : ((const struct mw_orig4 *)orig)->flags;
}

/*
 * A sidecar handing a connection to its own app: a socket of the pod's
 * sidecar (its owner, as connect4/connect6 tell it: mw_sock_owner_uid,
 * mw_sidecar_uid) to its own pod, loopback or the pod's address (remote,
 * as for mw_pod_ip_cookie), on a port that is not a capture port. An app's
 * sockets have another owner: its own loopback connections are not hops.
 * Told here from the socket itself, so connect4/connect6 allocate no socket
 * storage on every inbound connection to say it.
 */
static __always_inline int mw_sockops_is_delivery(struct bpf_sock_ops *skops, const int is6,
						  __u64 netns_cookie, const __u32 *remote,
						  __u32 server_port)
{
	struct bpf_sock *sk = skops->sk;
	const __u64 *pod;
	__u32 owner;

	if (!sk || mw_is_capture_port(server_port))
		return 0;
	if (!(is6 ? mw_is_loopback6(remote) : mw_is_loopback4(remote[0]))) {
		pod = mw_pod_ip_cookie(remote, is6);
		if (!pod || *pod != netns_cookie)
			return 0;
	}
	/* No owner to read (not a TCP socket): not the sidecar's. */
	owner = mw_sock_owner_uid(sk);
	return owner != (__u32)-1 && owner == mw_sidecar_uid(netns_cookie);
}

/*
 * Is this connecting socket one of the mesh's own hops? An app and its
 * sidecar (loopback, the sidecar's outbound port), two sidecars on this node
 * (two meshed pods' addresses, the inbound port), and a sidecar handing a
 * connection to its own app (mw_sockops_is_delivery). Other connections, an
 * app's own loopback ones included, keep the kernel's plain TCP semantics.
 * Both families alike (is6: native IPv6, key->k6; netns_cookie: the socket's).
 */
static __always_inline int mw_sockops_is_mesh_hop(struct bpf_sock_ops *skops, const int is6,
						  __u64 netns_cookie, const union mw_accel_key *key)
{
	const __u32 *local = is6 ? key->k6.local_ip6 : &key->k4.local_ip4;
	const __u32 *remote = is6 ? key->k6.remote_ip6 : &key->k4.remote_ip4;
	__u32 server_port = is6 ? key->k6.remote_port : key->k4.remote_port;

	if ((is6 ? mw_is_loopback6(remote) : mw_is_loopback4(remote[0])) &&
	    server_port == mw_cfg.outbound_port)
		return 1;
	if (server_port == mw_cfg.inbound_port && mw_pod_ip_cookie(remote, is6) &&
	    mw_pod_ip_cookie(local, is6))
		return 1;
	return mw_sockops_is_delivery(skops, is6, netns_cookie, remote, server_port);
}

/*
 * An accelerated socket's psock address, for its peer's sk_msg to read its
 * unread backlog through (lib/meshwire_accel.h), for the socket's own
 * mw_accel_state entry, which sk_msg looks up anyway. Read once the socket
 * is in the map: sk_user_data holds its psock then. 0 when not known (no
 * tcp_sock; no psock there, counted in accel_error): its peer redirects to
 * it without a bound.
 */
static __always_inline __u64 mw_sockops_accel_psock(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock___mwa *tp;
	__u64 psock;

	if (!sk)
		return 0;
	tp = (struct tcp_sock___mwa *)bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	psock = (__u64)(unsigned long)tp->inet_conn.icsk_inet.sk.sk_user_data & MW_SK_USER_DATA_PTRMASK;
	if (!psock)
		mw_count(MW_STAT_ACCEL_ERROR);
	return psock;
}

/*
 * The destination a connecting socket's hop learns under (mw_accel_hints,
 * lib/meshwire_accel.h "Short connections"): its pod's netns cookie and, for
 * an app's hop to its sidecar, the original destination its socket storage
 * carries (every one of the app's hops goes to the same sidecar address,
 * whatever it dials); for any other hop (sidecar to sidecar, a sidecar to its
 * app), the remote address and port. Computed alike at establishment and at
 * the FIN: the storage stays with the socket (orig: it, mw_sockops_orig;
 * netns_cookie: the socket's).
 */
static __always_inline void mw_sockops_hint_key(const int is6, __u64 netns_cookie,
						const void *orig, const union mw_accel_key *key,
						struct mw_accel_hint_key *hk)
{
	const struct mw_orig6 *o6 = orig;
	const struct mw_orig4 *o4 = orig;

	__builtin_memset(hk, 0, sizeof(*hk));
	hk->netns_cookie = netns_cookie;
	hk->flags = is6 ? MW_ACCEL_HINT_F_IP6 : 0;
	if (is6) {
		hk->port = key->k6.remote_port;
		if (o6 && (o6->flags & MW_ORIG_F_CONNECT) && hk->port == mw_cfg.outbound_port &&
		    mw_is_loopback6(key->k6.remote_ip6)) {
			__builtin_memcpy(hk->ip, o6->ip6, sizeof(hk->ip));
			hk->port = bpf_ntohs(o6->port);
			hk->flags |= MW_ACCEL_HINT_F_ORIG;
			return;
		}
		__builtin_memcpy(hk->ip, key->k6.remote_ip6, sizeof(hk->ip));
		return;
	}
	hk->port = key->k4.remote_port;
	if (o4 && (o4->flags & MW_ORIG_F_CONNECT) && hk->port == mw_cfg.outbound_port &&
	    mw_is_loopback4(key->k4.remote_ip4)) {
		hk->ip[0] = o4->ip4;
		hk->port = bpf_ntohs(o4->port);
		hk->flags = MW_ACCEL_HINT_F_ORIG;
		return;
	}
	hk->ip[0] = key->k4.remote_ip4;
}

/*
 * Were this hop's destination's recent accelerated connections short, and
 * is that fresh? Then accelerating this one costs more than it gains: 1.
 */
static __always_inline int mw_sockops_hop_is_short(const int is6, __u64 netns_cookie,
						   const void *orig, const union mw_accel_key *key)
{
	struct mw_accel_hint_key hk;
	struct mw_accel_hint *hint;

	mw_sockops_hint_key(is6, netns_cookie, orig, key, &hk);
	hint = bpf_map_lookup_elem(&mw_accel_hints, &hk);
	return hint && hint->score >= MW_ACCEL_SHORT_RUN &&
	       bpf_ktime_get_ns() - hint->last_short_ns < MW_ACCEL_HINT_WINDOW_NS;
}

/*
 * A hop's connecting end sent its FIN: report what its hop carried (msgs,
 * both directions; a socket that left for TCP or lagged was a bulk one) to
 * its destination's hint. Short: the run grows (saturating) and the report's
 * time is kept; long: the run is over. A long report for a destination
 * without a hint changes nothing, so only a short one inserts. orig: the
 * socket's storage (mw_sockops_orig).
 */
static __always_inline void mw_sockops_report(struct bpf_sock_ops *skops, const int is6,
					      const void *orig, const union mw_accel_key *key,
					      __u32 msgs, __u32 flags)
{
	int is_short = msgs <= MW_ACCEL_SHORT_MSGS && !(flags & (MW_ACCEL_LAG | MW_ACCEL_LEAVE));
	struct mw_accel_hint fresh = {}, *hint;
	struct mw_accel_hint_key hk;

	mw_sockops_hint_key(is6, bpf_get_netns_cookie(skops), orig, key, &hk);
	hint = bpf_map_lookup_elem(&mw_accel_hints, &hk);
	if (!hint) {
		if (!is_short)
			return;
		fresh.score = 1;
		fresh.last_short_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&mw_accel_hints, &hk, &fresh, BPF_NOEXIST);
		return;
	}
	if (!is_short) {
		hint->score = 0;
		return;
	}
	if (hint->score < MW_ACCEL_SHORT_RUN)
		hint->score++;
	hint->last_short_ns = bpf_ktime_get_ns();
}

/*
 * Acceleration: both ends of a mesh hop go into mw_sock_hash (mw_sock_hash6
 * for native IPv6), where sk_msg finds each as the peer of the other. The
 * connecting end decides (it is established, and entered, before the
 * accepted one); the accepted end follows only if its peer is in, so that a
 * socket whose peer is not accelerated never picks up tcp_bpf's receive path
 * for nothing (its peer's entry is looked at before its pod's: most accepted
 * sockets have no peer in, and the accepted end of a hop left out answers
 * with one lookup). Its state changes are asked for, to handle its FIN and
 * close (mw_sockops_accel_state, lib/meshwire_accel.h says why). The socket
 * enters the socket map first and its mw_accel_state entry follows, with its
 * psock address (mw_sockops_accel_psock) in it: one insert, no lookup of
 * the entry just made. The callback holds the socket's lock, so its own
 * sk_msg cannot run before the entry is there; a peer's sk_msg that looks
 * it up in between finds none and sends through TCP, as it did when it
 * found the entry before the socket was in the map. A full map: the
 * connection runs unaccelerated (out of both maps), counted in accel_error.
 * With short_connections = "learn", a connecting end whose destination's
 * recent connections were short stays out (accel_skipped_short), and one
 * that goes in is marked MW_ACCEL_CONNECT, to report at its FIN. orig: the
 * socket's storage (mw_sockops_orig; the connecting end's hint key reads
 * it), NULL for an accepted end.
 */
static __always_inline void mw_sockops_accelerate(struct bpf_sock_ops *skops, const int is6,
						  const void *orig)
{
	struct mw_accel_state fresh = {};
	union mw_accel_key key, peer;
	const struct mw_pod *pod;
	__u64 netns_cookie;

	if (!mw_cfg.accel)
		return;
	netns_cookie = bpf_get_netns_cookie(skops);
	mw_accel_keys(skops, is6, &key, &peer);
	if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		if (!bpf_map_lookup_elem(mw_accel_state_map(is6), &peer))
			return;
	} else if (mw_cfg.accel_short == MW_ACCEL_SHORT_LEARN) {
		/*
		 * The hint first: one is written only for a hop that passed
		 * the pod and mesh-hop checks below, so a short hop, most of
		 * a learning node's connections, is left out in one lookup.
		 */
		if (mw_sockops_hop_is_short(is6, netns_cookie, orig, &key)) {
			mw_count(MW_STAT_ACCEL_SKIPPED_SHORT);
			return;
		}
		fresh.flags = MW_ACCEL_CONNECT;
	}
	/* Each end's own pod says whether its socket may be accelerated. */
	pod = mw_pod_lookup(netns_cookie);
	if (!pod || !(pod->flags & MW_POD_F_ACCEL))
		return;
	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    !mw_sockops_is_mesh_hop(skops, is6, netns_cookie, &key))
		return;
	if (bpf_sock_hash_update(skops, mw_accel_sock_map(is6), &key, BPF_ANY)) {
		mw_count(MW_STAT_ACCEL_ERROR);
		return;
	}
	fresh.psock = mw_sockops_accel_psock(skops);
	if (bpf_map_update_elem(mw_accel_state_map(is6), &key, &fresh, BPF_ANY)) {
		bpf_map_delete_elem(mw_accel_sock_map(is6), &key);
		mw_count(MW_STAT_ACCEL_ERROR);
		return;
	}
	/* RTT: an ACK of data it sent through TCP, where a bulk sender leaves. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					 BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG);
	mw_count(MW_STAT_ACCEL_SOCK_ADDED);
}

/*
 * A socket closed that may have published its origin (its storage, orig:
 * mw_sockops_orig, has MW_ORIG_F_CONNECT: only an app's redirected socket
 * does)? With acceleration every accelerated socket gets state callbacks,
 * the sidecars' too: their close must not cost a delete (an LRU bucket's
 * lock) in the tuple maps for an entry they never wrote, nor, after their
 * FIN, the state callbacks themselves. A socket storage lookup takes no lock.
 */
static __always_inline int mw_sockops_may_have_published(const void *orig, const int is6)
{
	return !!(mw_sockops_orig_flags(orig, is6) & MW_ORIG_F_CONNECT);
}

/* Was the socket in a state that follows a FIN of its own (args[0] of a state callback)? */
static __always_inline int mw_tcp_after_own_fin(__u32 old_state)
{
	return old_state == BPF_TCP_FIN_WAIT1 || old_state == BPF_TCP_FIN_WAIT2 ||
	       old_state == BPF_TCP_CLOSING || old_state == BPF_TCP_TIME_WAIT ||
	       old_state == BPF_TCP_LAST_ACK;
}

/*
 * An accelerated socket's state changed. At its FIN (FIN_WAIT1: shutdown()
 * or close() before the peer's FIN; LAST_ACK: after it) it stops receiving
 * redirects and, if none ever reached it, leaves mw_sock_hash, so that its
 * reads are plain TCP ones (lib/meshwire_accel.h says why). It sends nothing
 * after its FIN, so its mw_accel_state entry goes right then: MW_ACCEL_CLOSING
 * is set first, under the lock, for a peer's sk_msg that already holds the
 * entry (the map frees it only after an RCU grace period), and a peer that
 * looks it up later finds none and sends through TCP, as it would to a
 * closing socket. Then it asks for no more callbacks: its later state
 * changes (FIN_WAIT2, CLOSE, ...) and the ACK of its FIN (RTT) have nothing
 * left to do, except the close of an app's socket that published its
 * origin (mw_sockops_forget). A hop's connecting end (MW_ACCEL_CONNECT)
 * reports what its hop carried to its destination's hint first. A socket
 * that closes without a FIN of its own (a reset) loses its entry at its
 * close, and reports nothing. Both families alike.
 */
static __always_inline void mw_sockops_accel_state(struct bpf_sock_ops *skops, const int is6)
{
	__u32 to = skops->args[1], cb = skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG;
	struct mw_accel_state *state;
	union mw_accel_key key, peer;
	const void *orig;
	__u32 flags;

	if (!mw_cfg.accel ||
	    (to != BPF_TCP_FIN_WAIT1 && to != BPF_TCP_LAST_ACK && to != BPF_TCP_CLOSE))
		return;
	if (to == BPF_TCP_CLOSE) {
		/*
		 * A close after a FIN of its own (from FIN_WAIT1, FIN_WAIT2,
		 * CLOSING, TIME_WAIT or LAST_ACK): its entry, if it had one, went
		 * at that FIN, whose callback it had asked for when it entered.
		 * Only a close without one (a reset) has an entry to delete, so
		 * a short connection left out of the socket map pays no delete
		 * (a bucket lock) for an entry it never had.
		 */
		if (mw_tcp_after_own_fin(skops->args[0]))
			return;
		mw_accel_keys(skops, is6, &key, &peer);
		bpf_map_delete_elem(mw_accel_state_map(is6), &key);
		return;
	}
	mw_accel_keys(skops, is6, &key, &peer);
	state = bpf_map_lookup_elem(mw_accel_state_map(is6), &key);
	if (!state)
		return;
	bpf_spin_lock(&state->lock);
	flags = state->flags;
	state->flags = flags | MW_ACCEL_CLOSING;
	bpf_spin_unlock(&state->lock);
	orig = mw_sockops_orig(skops, is6);
	if (mw_cfg.accel_short == MW_ACCEL_SHORT_LEARN && (flags & MW_ACCEL_CONNECT))
		mw_sockops_report(skops, is6, orig, &key, *(volatile __u32 *)&state->msgs, flags);
	if (!(flags & MW_ACCEL_RX)) {
		bpf_map_delete_elem(mw_accel_sock_map(is6), &key);
		mw_trace("sockops accel: port %d left the socket map at its FIN",
			 is6 ? key.k6.local_port : key.k4.local_port);
	}
	bpf_map_delete_elem(mw_accel_state_map(is6), &key);
	if (!mw_sockops_may_have_published(orig, is6))
		cb &= ~BPF_SOCK_OPS_STATE_CB_FLAG;
	bpf_sock_ops_cb_flags_set(skops, cb);
}

/*
 * An accelerated socket's data sent through TCP was ACKed (RTT_CB, asked for
 * when it entered the map; a redirecting socket sends no data through TCP,
 * so this runs only on a socket that passes messages to TCP). One that
 * sk_msg found to be a bulk sender (MW_ACCEL_LEAVE: nothing was ever
 * redirected to it, and MW_ACCEL_CLOSING keeps it so) leaves mw_sock_hash
 * here, as sk_msg cannot: its sends are plain TCP ones from now on, without
 * tcp_bpf's copy into an sk_msg. Its psock address goes with it (the psock
 * is freed: the peer reads no backlog of a socket out of the map), and it
 * asks for no more RTT callbacks.
 */
static __always_inline void mw_sockops_accel_rtt(struct bpf_sock_ops *skops, const int is6)
{
	struct mw_accel_state *state;
	union mw_accel_key key, peer;

	if (!mw_cfg.accel)
		return;
	mw_accel_keys(skops, is6, &key, &peer);
	state = bpf_map_lookup_elem(mw_accel_state_map(is6), &key);
	if (state && !(*(volatile __u32 *)&state->flags & MW_ACCEL_LEAVE))
		return;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
	if (!state)
		return;
	*(volatile __u64 *)&state->psock = 0;
	bpf_map_delete_elem(mw_accel_sock_map(is6), &key);
	mw_trace("sockops accel: port %d, a bulk sender, left the socket map",
		 is6 ? key.k6.local_port : key.k4.local_port);
}

/* The app's socket closed; drop an entry the sidecar never took. */
static __always_inline void mw_sockops_forget(struct bpf_sock_ops *skops)
{
	struct mw_tuple4 key;

	if (!mw_sockops_may_have_published(mw_sockops_orig(skops, 0), 0))
		return;
	mw_tuple4_from_client(skops, &key);
	if (bpf_map_delete_elem(&mw_orig_tuple4, &key) == 0)
		mw_count(MW_STAT_SOCKOPS_CLOSED);
}

/*
 * A native IPv6 connection between an app and its sidecar ([::1], connect6
 * with interception.ipv6 = "intercept"), seen from its client side or from
 * the sidecar's accepted socket: mw_tuple4_from_client/_server for IPv6.
 */
static __always_inline void mw_tuple6_of(struct bpf_sock_ops *skops, struct mw_tuple6 *key,
					 int from_client)
{
	/* One 4-byte load per word: the verifier refuses merged 8-byte ones. */
	const volatile __u32 *l = skops->local_ip6, *r = skops->remote_ip6;
	__u32 local[4] = { l[0], l[1], l[2], l[3] };
	__u32 remote[4] = { r[0], r[1], r[2], r[3] };
	__u16 local_port = (__u16)skops->local_port;
	__u16 remote_port = (__u16)bpf_ntohl(skops->remote_port);
	const __u32 *server = from_client ? remote : local;

	__builtin_memcpy(key->client_ip6, from_client ? local : remote, sizeof(key->client_ip6));
	__builtin_memcpy(key->server_ip6, server, sizeof(key->server_ip6));
	key->client_port = from_client ? local_port : remote_port;
	key->server_port = from_client ? remote_port : local_port;
	key->pad = 0;
	key->netns_cookie = mw_is_loopback6(server) ? bpf_get_netns_cookie(skops) : 0;
}

/* mw_sockops_publish for a native IPv6 connection. */
static __always_inline void mw_sockops6_publish(struct bpf_sock_ops *skops,
						const struct mw_orig6 *orig)
{
	struct mw_orig6 val;
	struct mw_tuple6 key;

	if (!orig || !(orig->flags & MW_ORIG_F_CONNECT))
		return;
	val = *orig;
	mw_tuple6_of(skops, &key, 1);
	if (bpf_map_update_elem(&mw_orig_tuple6, &key, &val, BPF_ANY)) {
		mw_count(MW_STAT_SOCKOPS_ERROR);
		return;
	}
	mw_sockops_published(skops);
	mw_emit6(MW_HOOK_SOCKOPS, MW_DEC_SOCKOPS_PUBLISHED, bpf_get_netns_cookie(skops),
		 key.client_ip6, key.client_port, val.ip6, bpf_ntohs(val.port), key.server_ip6,
		 key.server_port, MW_EV_NO_TASK);
}

/*
 * The kernel's tcp6_sock and ipv6_pinfo, only the field read: CO-RE
 * relocates its offset against the running kernel's BTF (MW_CORE,
 * lib/meshwire_policy.h).
 */
struct ipv6_pinfo {
	__be32 flow_label;
} MW_CORE;
struct tcp6_sock {
	struct ipv6_pinfo inet6;
} MW_CORE;

#define MW_IPV6_FLOWINFO_MASK	0x0fffffffU	/* linux/in6.h, host order */

/*
 * mw_sockops_bind_accepted for a native IPv6 connection to a steered port
 * (an app's to the outbound port or to the DNS proxy, another sidecar's on
 * this node to the inbound port), or of an inbound flow from another node (mw_flow6: tc
 * steered it to the inbound port; the dialled port is the flow's). The
 * accepted socket's flow label goes with it: netfilter answers
 * IP6T_SO_ORIGINAL_DST's sin6_flowinfo from it, and getsockopt programs
 * cannot read it (no bpf_skc_to_tcp6_sock there).
 */
static __always_inline void mw_sockops6_bind_accepted(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct mw_orig6 *orig, *stored, from_flow = {};
	struct mw_flow6_key flow_key = {};
	struct mw_flow4 *flow = NULL;
	struct tcp6_sock *tp6;
	struct mw_tuple6 key;

	if (!sk || !mw_is_steered_port((__u16)skops->local_port))
		return;
	mw_tuple6_of(skops, &key, 0);
	orig = bpf_map_lookup_elem(&mw_orig_tuple6, &key);
	if (!orig && skops->local_port == mw_cfg.inbound_port) {
		/* An inbound flow from another node that tc ingress steered here. */
		__builtin_memcpy(flow_key.remote_ip6, key.client_ip6, sizeof(flow_key.remote_ip6));
		__builtin_memcpy(flow_key.local_ip6, key.server_ip6, sizeof(flow_key.local_ip6));
		flow_key.remote_port = bpf_htons(key.client_port);
		flow = bpf_map_lookup_elem(&mw_flow6, &flow_key);
		if (!flow)
			return;
		__builtin_memcpy(from_flow.ip6, key.server_ip6, sizeof(from_flow.ip6));
		from_flow.port = flow->orig_port;
		orig = &from_flow;
	}
	if (!orig)
		return;
	stored = bpf_sk_storage_get(&mw_orig6_sk, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!stored) {
		mw_count(MW_STAT_SOCKOPS_ERROR);
		return;
	}
	*stored = *orig;
	stored->flags = MW_ORIG_F_ACCEPTED;
	tp6 = bpf_skc_to_tcp6_sock(sk);
	stored->flowinfo = tp6 ? tp6->inet6.flow_label & bpf_htonl(MW_IPV6_FLOWINFO_MASK) : 0;
	mw_count(MW_STAT_SOCKOPS_ACCEPT_BOUND);
	if (!flow)
		bpf_map_delete_elem(&mw_orig_tuple6, &key);
}

/* The app's socket closed; drop an entry the sidecar never took. */
static __always_inline void mw_sockops6_forget(struct bpf_sock_ops *skops)
{
	struct mw_tuple6 key;

	if (!mw_sockops_may_have_published(mw_sockops_orig(skops, 1), 1))
		return;
	mw_tuple6_of(skops, &key, 1);
	if (bpf_map_delete_elem(&mw_orig_tuple6, &key) == 0)
		mw_count(MW_STAT_SOCKOPS_CLOSED);
}

/*
 * Native IPv6: the hand-over of steered connections (outbound and inbound
 * with interception.ipv6 = "intercept", DNS over TCP with any policy:
 * connect6 noted only those on their sockets) and, only when meshwire steers
 * IPv6, acceleration of the mesh's IPv6 hops (without it there are no such
 * hops). An accelerated socket's FIN and close are handled whatever the
 * policy, so a restart that changed it leaves no state behind.
 */
static __always_inline void mw_sockops6(struct bpf_sock_ops *skops)
{
	int steered = mw_cfg.ipv6 == MW_IPV6_INTERCEPT;
	const void *orig;

	if (skops->op == BPF_SOCK_OPS_STATE_CB)
		mw_sockops_accel_state(skops, 1);
	if (skops->op == BPF_SOCK_OPS_RTT_CB)
		mw_sockops_accel_rtt(skops, 1);
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		orig = mw_sockops_orig(skops, 1);
		mw_sockops6_publish(skops, orig);
		if (steered)
			mw_sockops_accelerate(skops, 1, orig);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		mw_sockops6_bind_accepted(skops);
		if (steered)
			mw_sockops_accelerate(skops, 1, NULL);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			mw_sockops6_forget(skops);
		break;
	}
}

/*
 * An IPv4 connection is an AF_INET socket, or an AF_INET6 one on v4-mapped
 * addresses (connect6 steers those; local_ip4 and remote_ip4 hold its
 * addresses; acceleration keys it as IPv4): mw_conn_is_ip4.
 */
SEC("sockops")
int mw_sockops(struct bpf_sock_ops *skops)
{
	const void *orig;

	if (!mw_conn_is_ip4(skops)) {
		if (skops->family == MW_AF_INET6)
			mw_sockops6(skops);
		return 1;
	}

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		orig = mw_sockops_orig(skops, 0);
		mw_sockops_publish(skops, orig);
		mw_sockops_accelerate(skops, 0, orig);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		mw_sockops_bind_accepted(skops);
		mw_sockops_accelerate(skops, 0, NULL);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			mw_sockops_forget(skops);
		mw_sockops_accel_state(skops, 0);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		mw_sockops_accel_rtt(skops, 0);
		break;
	}
	return 1;
}
