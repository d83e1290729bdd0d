// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor of --mode hooks (tools/bench/hooks.py): programs that do one of
 * the things the datapath's per-packet and per-message programs do, and
 * nothing else, measured exactly as those programs are. Each program's cost
 * minus the empty program's is that helper's cost alone; the datapath
 * program cannot cost less than the sum of the helpers its path must call.
 * Compiled at run time with tools/bpf_cc.sh; never shipped.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char _license[] SEC("license") = "Dual BSD/GPL";

/*
 * The datapath's own map definitions (mw_flow4, mw_sock_hash, mw_accel_state,
 * mw_orig_sk ...): the floor looks up the same kinds of maps. Each floor
 * program is loaded into a bpffs of its own, so they are fresh maps.
 */
#include "meshwire_maps.h"
/* The kernel's tcp_sock and sk_psock as sk_msg reads them (CO-RE), for the backlog read. */
#include "meshwire_accel.h"
/* mw_tc_ingress's own parse (headers read in place), for the sk_assign floor. */
#include "meshwire_l4.h"

/* ---- tc: run on the same frames as mw_tc_ingress ---- */

/* Nothing: what running a program and measuring it costs. */
SEC("tc")
int floor_tc_empty(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

/* The IPv4 and TCP headers read with bpf_skb_load_bytes (the old parse). */
SEC("tc")
int floor_tc_load_bytes(struct __sk_buff *skb)
{
	struct iphdr iph;
	struct tcphdr tcph;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &iph, sizeof(iph)) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + iph.ihl * 4, &tcph, sizeof(tcph)))
		return TC_ACT_SHOT;
	return tcph.dest == iph.daddr ? TC_ACT_OK : TC_ACT_UNSPEC;
}

/* The flow key read in place, looked up in map (the verdict says whether it was there). */
static __always_inline int floor_flow_lookup(struct __sk_buff *skb, void *map)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + ETH_HLEN;
	struct tcphdr *th = (void *)(iph + 1);
	struct mw_flow4_key key = {};

	if ((void *)(th + 1) > end)
		return TC_ACT_SHOT;
	key.remote_ip4 = iph->saddr;
	key.local_ip4 = iph->daddr;
	key.remote_port = th->source;
	return bpf_map_lookup_elem(map, &key) ? TC_ACT_OK : TC_ACT_UNSPEC;
}

/* The flow key looked up in an LRU hash like mw_flow4. */
SEC("tc")
int floor_tc_flow_lookup(struct __sk_buff *skb)
{
	return floor_flow_lookup(skb, &mw_flow4);
}

/*
 * mw_flow4's key and value in a plain hash map of its size (preallocated, no
 * LRU lists): what the LRU costs a flow's lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow4_key);
	__type(value, struct mw_flow4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} floor_flow4_hash SEC(".maps");

/* floor_tc_flow_lookup in floor_flow4_hash. */
SEC("tc")
int floor_tc_flow_lookup_hash(struct __sk_buff *skb)
{
	return floor_flow_lookup(skb, &floor_flow4_hash);
}

/* The port rewrite: bpf_skb_store_bytes and bpf_l4_csum_replace. */
SEC("tc")
int floor_tc_rewrite(struct __sk_buff *skb)
{
	__u32 off = ETH_HLEN + sizeof(struct iphdr);
	__u16 from = bpf_htons(8080), to = bpf_htons(15003);

	if (bpf_skb_store_bytes(skb, off + offsetof(struct tcphdr, dest), &to, 2, 0) ||
	    bpf_l4_csum_replace(skb, off + offsetof(struct tcphdr, check), from, to, 2))
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}

/*
 * The same two helpers writing back what is there (TCP's ports, read in
 * place): for real traffic, which a rewrite would break, what the helpers
 * cost on real packets.
 */
SEC("tc")
int floor_tc_rewrite_same(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + ETH_HLEN;
	struct tcphdr *th = (void *)(iph + 1);
	__u32 off = ETH_HLEN + sizeof(struct iphdr);
	__u16 port;

	if ((void *)(th + 1) > end || skb->protocol != bpf_htons(ETH_P_IP) ||
	    iph->protocol != IPPROTO_TCP || iph->ihl != 5)
		return TC_ACT_UNSPEC;
	port = th->dest;
	if (bpf_skb_store_bytes(skb, off + offsetof(struct tcphdr, dest), &port, 2, 0) ||
	    bpf_l4_csum_replace(skb, off + offsetof(struct tcphdr, check), port, port, 2))
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}

/*
 * Inbound steering without a rewrite (a design meshwire does not use; issue
 * 15 item 3): at tc ingress the SYN to the app's port (8080) is given to the
 * sidecar's inbound listener (15003) with bpf_sk_assign, so the listener
 * accepts a connection whose local address stays the app's port (as TPROXY
 * does). Every later packet of the connection finds the accepted socket (or
 * its request socket) by its own 4-tuple in the kernel's lookup, so it needs
 * no program work, and there is no egress program: nothing to reverse.
 *
 * What such a program cannot do without, and nothing else: mw_tc_ingress's
 * own parse (mw_parse_tcp4, in place), the SYN check, and for a SYN to the
 * steered port: a lookup by the SYN's own 4-tuple first (bpf_skc_lookup_tcp,
 * as the kernel's selftest does: a retransmitted SYN of a connection under
 * way, or one meeting a TIME_WAIT socket, belongs to that socket, which the
 * stack finds itself by the same tuple: passed), then the listener on the
 * inbound port, assigned and released. The first lookup answers the app's
 * own listener on 8080 when there is one (there always is in a pod): it is
 * passed over. No per-pod configuration, no excluded ports, IPv4 only.
 *
 * A SYN the program cannot steer is dropped, as mw_tc_ingress drops a SYN it
 * cannot record: passing it would reach the app past the sidecar. Two codes,
 * both a drop, so that a test run tells which failed: no inbound listener
 * (TC_ACT_SHOT), or bpf_sk_assign refused (TC_ACT_STOLEN; it answers
 * -EOPNOTSUPP outside tc ingress).
 */
#define FLOOR_APP_PORT		8080
#define FLOOR_INBOUND_PORT	15003

/* bpf_skc_lookup_tcp of the packet t's addresses and source port, with dport (network order). */
static __always_inline struct bpf_sock *floor_skc_lookup(struct __sk_buff *skb, const struct mw_tcp4 *t,
							 __u16 dport)
{
	struct bpf_sock_tuple tuple = {};

	tuple.ipv4.saddr = t->saddr;
	tuple.ipv4.sport = t->sport;
	tuple.ipv4.daddr = t->daddr;
	tuple.ipv4.dport = dport;
	return bpf_skc_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
}

/* The inbound listener for the packet t (local address as t's, port 15003), assigned. */
static __always_inline int floor_assign_listener(struct __sk_buff *skb, const struct mw_tcp4 *t)
{
	struct bpf_sock *sk = floor_skc_lookup(skb, t, bpf_htons(FLOOR_INBOUND_PORT));
	long err;

	if (!sk)
		return TC_ACT_SHOT;
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return TC_ACT_SHOT;
	}
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	return err ? TC_ACT_STOLEN : TC_ACT_UNSPEC;
}

/*
 * The packet's own socket looked up by its 4-tuple: 1 when it has one that is
 * not a listener (the stack finds it itself by the same tuple), else 0 (no
 * socket, or the app's listener: the inbound listener is what it needs).
 */
static __always_inline int floor_own_socket(struct __sk_buff *skb, const struct mw_tcp4 *t)
{
	struct bpf_sock *sk = floor_skc_lookup(skb, t, t->dport);
	int found;

	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/* The design as proposed: a SYN to the steered port assigned; every other packet passed, no lookup. */
SEC("tc")
int floor_tc_sk_assign(struct __sk_buff *skb)
{
	struct mw_tcp4 t = {};

	if (mw_parse_tcp4(skb, &t) != MW_PARSE_TCP ||
	    (t.flags & (MW_TCP_SYN | MW_TCP_ACK)) != MW_TCP_SYN || t.dport != bpf_htons(FLOOR_APP_PORT))
		return TC_ACT_UNSPEC;
	if (floor_own_socket(skb, &t))
		return TC_ACT_UNSPEC;
	return floor_assign_listener(skb, &t);
}

/*
 * The same with every TCP packet to the steered port looked up, as the
 * kernel's selftest and iptables' TPROXY (-m socket) do: a packet without a
 * socket of its own also goes to the inbound listener. The proposed design
 * skips that; it matters for an ACK that completes a SYN cookie handshake
 * (the listener's SYN queue full): no request socket exists for it, so the
 * kernel's own lookup takes it to the app's listener on 8080 (or none), not
 * the sidecar's, and the connection is reset (seen on 6.18 with
 * net.ipv4.tcp_syncookies = 2 in the namespace, an app listener or none;
 * this program's connections were accepted on 15003). The cost of closing
 * that gap: a lookup per packet.
 */
SEC("tc")
int floor_tc_sk_assign_every(struct __sk_buff *skb)
{
	struct mw_tcp4 t = {};

	if (mw_parse_tcp4(skb, &t) != MW_PARSE_TCP || t.dport != bpf_htons(FLOOR_APP_PORT))
		return TC_ACT_UNSPEC;
	if (floor_own_socket(skb, &t))
		return TC_ACT_UNSPEC;
	return floor_assign_listener(skb, &t);
}

/* ---- sk_msg: run on real messages of a loopback pair ---- */

static __always_inline void floor_peer_key(struct sk_msg_md *msg, struct mw_sock_key *peer)
{
	peer->netns_cookie = bpf_get_netns_cookie(msg);
	peer->local_ip4 = msg->remote_ip4;
	peer->remote_ip4 = msg->local_ip4;
	peer->local_port = bpf_ntohl(msg->remote_port);
	peer->remote_port = msg->local_port;
}

SEC("sk_msg")
int floor_skmsg_empty(struct sk_msg_md *msg)
{
	return SK_PASS;
}

/* The peer's key (netns cookie included) and bpf_msg_redirect_hash alone. */
SEC("sk_msg")
int floor_skmsg_redirect(struct sk_msg_md *msg)
{
	struct mw_sock_key peer = {};

	floor_peer_key(msg, &peer);
	return bpf_msg_redirect_hash(msg, &mw_sock_hash, &peer, BPF_F_INGRESS);
}

/* The same with one state lookup (the peer's) before the redirect. */
SEC("sk_msg")
int floor_skmsg_lookup_redirect(struct sk_msg_md *msg)
{
	struct mw_sock_key peer = {};

	floor_peer_key(msg, &peer);
	if (!bpf_map_lookup_elem(&mw_accel_state, &peer))
		return SK_PASS;
	return bpf_msg_redirect_hash(msg, &mw_sock_hash, &peer, BPF_F_INGRESS);
}

/* The same with the peer's state taken under its spin lock. */
SEC("sk_msg")
int floor_skmsg_lock_redirect(struct sk_msg_md *msg)
{
	struct mw_accel_state *st;
	struct mw_sock_key peer = {};

	floor_peer_key(msg, &peer);
	st = bpf_map_lookup_elem(&mw_accel_state, &peer);
	if (!st)
		return SK_PASS;
	bpf_spin_lock(&st->lock);
	st->flags |= MW_ACCEL_RX;
	bpf_spin_unlock(&st->lock);
	return bpf_msg_redirect_hash(msg, &mw_sock_hash, &peer, BPF_F_INGRESS);
}

/*
 * What mw_skmsg_redirect's path cannot do without, on an established
 * accelerated pair, and nothing else: its own mw_accel_state entry looked up
 * (has it gone to TCP?), its peer's (closing? its psock?), the peer's unread
 * backlog read through a psock address (bpf_probe_read_kernel of
 * sk_psock.msg_tot_len; here the sender's own psock, from its sk_user_data:
 * the same read of the same kind of object), and the redirect.
 */
SEC("sk_msg")
int floor_skmsg_path(struct sk_msg_md *msg)
{
	struct mw_sock_key own = {}, peer = {};
	struct tcp_sock___mwa *tp;
	__u64 psock = 0;
	__u32 backlog = 0;

	floor_peer_key(msg, &peer);
	own.netns_cookie = peer.netns_cookie;
	own.local_ip4 = msg->local_ip4;
	own.remote_ip4 = msg->remote_ip4;
	own.local_port = msg->local_port;
	own.remote_port = bpf_ntohl(msg->remote_port);
	if (!bpf_map_lookup_elem(&mw_accel_state, &own) || !bpf_map_lookup_elem(&mw_accel_state, &peer))
		return SK_PASS;
	tp = msg->sk ? (struct tcp_sock___mwa *)bpf_skc_to_tcp_sock(msg->sk) : NULL;
	if (tp)
		psock = (__u64)(unsigned long)tp->inet_conn.icsk_inet.sk.sk_user_data & MW_SK_USER_DATA_PTRMASK;
	if (psock)
		bpf_probe_read_kernel(&backlog, sizeof(backlog), &((struct sk_psock___mwa *)psock)->msg_tot_len);
	if (backlog >= MW_ACCEL_BACKLOG_MAX)
		return SK_PASS;
	return bpf_msg_redirect_hash(msg, &mw_sock_hash, &peer, BPF_F_INGRESS);
}

/* ---- cgroup/connect4: run on real connect() calls, as mw_sock4_connect is ---- */

/* Every floor connect4 program steers to the harness's listener, as connect4 does. */
static __always_inline int floor_steer(struct bpf_sock_addr *ctx)
{
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(15001);
	return 1;
}

SEC("cgroup/connect4")
int floor_connect4_empty(struct bpf_sock_addr *ctx)
{
	return floor_steer(ctx);
}

/* The original destination stored on the socket: bpf_sk_storage_get, creating. */
SEC("cgroup/connect4")
int floor_connect4_storage(struct bpf_sock_addr *ctx)
{
	struct mw_orig4 *orig = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL,
						   BPF_SK_STORAGE_GET_F_CREATE);

	if (!orig)
		return 0;
	orig->ip4 = ctx->user_ip4;
	orig->port = (__u16)ctx->user_port;
	return floor_steer(ctx);
}

/* The source address picked for the socket: bpf_bind (outbound_sources). */
SEC("cgroup/connect4")
int floor_connect4_bind(struct bpf_sock_addr *ctx)
{
	struct sockaddr_in sin = { .sin_family = 2 };

	sin.sin_addr.s_addr = bpf_htonl(MW_OUT_SRC_ADDR4 + (__u32)(bpf_get_socket_cookie(ctx) % 16));
	bpf_bind(ctx, (struct sockaddr *)&sin, sizeof(sin));
	return floor_steer(ctx);
}

/*
 * The store the reference implementations keep the original destination in
 * instead of socket storage: a hash map keyed by the socket's cookie (never
 * reused while the machine runs), the value meshwire's (struct mw_orig4), as
 * many entries as mw_orig_tuple4. LRU: a connection that never reaches the
 * delete (a failed connect) is evicted once the map is full, and so is a
 * live socket's entry under pressure. Plain (preallocated): nothing is
 * evicted; what is not deleted stays, and a full map refuses the update.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_TUPLES);
	__type(key, __u64);
	__type(value, struct mw_orig4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} floor_orig_cookie_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_TUPLES);
	__type(key, __u64);
	__type(value, struct mw_orig4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} floor_orig_cookie_hash SEC(".maps");

/* The original destination put into map under the socket's cookie. */
static __always_inline int floor_connect4_cookie(struct bpf_sock_addr *ctx, void *map)
{
	struct mw_orig4 orig = { .flags = MW_ORIG_F_CONNECT };
	__u64 cookie = bpf_get_socket_cookie(ctx);

	orig.ip4 = ctx->user_ip4;
	orig.port = (__u16)ctx->user_port;
	if (bpf_map_update_elem(map, &cookie, &orig, BPF_ANY))
		return 0;
	return floor_steer(ctx);
}

SEC("cgroup/connect4")
int floor_connect4_cookie_lru(struct bpf_sock_addr *ctx)
{
	return floor_connect4_cookie(ctx, &floor_orig_cookie_lru);
}

SEC("cgroup/connect4")
int floor_connect4_cookie_hash(struct bpf_sock_addr *ctx)
{
	return floor_connect4_cookie(ctx, &floor_orig_cookie_hash);
}

/* ---- sockops: run on real connections' callbacks, as mw_sockops is ---- */

SEC("sockops")
int floor_sockops_empty(struct bpf_sock_ops *skops)
{
	return 1;
}

/*
 * Acceleration's part alone: each established end into a sockhash like
 * mw_sock_hash (bpf_sock_hash_update: the kernel gives the socket a psock).
 */
SEC("sockops")
int floor_sockops_sockhash(struct bpf_sock_ops *skops)
{
	struct mw_sock_key key = {};

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	key.netns_cookie = bpf_get_netns_cookie(skops);
	key.local_ip4 = skops->local_ip4;
	key.remote_ip4 = skops->remote_ip4;
	key.local_port = skops->local_port;
	key.remote_port = bpf_ntohl(skops->remote_port);
	bpf_sock_hash_update(skops, &mw_sock_hash, &key, BPF_ANY);
	return 1;
}

/* A socket's key in mw_sock_hash and mw_accel_state, from its side (own) or its peer's. */
static __always_inline void floor_sock_key(struct bpf_sock_ops *skops, struct mw_sock_key *k, int peer)
{
	__u32 lport = skops->local_port, rport = bpf_ntohl(skops->remote_port);

	k->netns_cookie = bpf_get_netns_cookie(skops);
	k->local_ip4 = peer ? skops->remote_ip4 : skops->local_ip4;
	k->remote_ip4 = peer ? skops->local_ip4 : skops->remote_ip4;
	k->local_port = peer ? rport : lport;
	k->remote_port = peer ? lport : rport;
}

/* The connection as mw_orig_tuple4 keys it: the connecting end's key, as the client. */
static __always_inline void floor_tuple(struct bpf_sock_ops *skops, struct mw_tuple4 *t, int accepted)
{
	struct mw_sock_key k;

	floor_sock_key(skops, &k, accepted);
	t->netns_cookie = k.netns_cookie;
	t->client_ip4 = k.local_ip4;
	t->server_ip4 = k.remote_ip4;
	t->client_port = k.local_port;
	t->server_port = k.remote_port;
	t->pad = 0;
}

/*
 * What mw_sockops cannot do without on a redirected connection, with
 * acceleration off, and nothing else (run behind floor_connect4_storage,
 * which leaves the original destination on the socket as connect4 does):
 * the connecting end reads its socket storage and publishes it (an LRU
 * insert in mw_orig_tuple4) and asks for its close callback; the accepted
 * end looks the tuple up, creates its own storage (marked accepted) and
 * deletes the tuple; at a close, its storage read and, for the connecting
 * end, its tuple's delete.
 */
static __always_inline void floor_sockops_plain(struct bpf_sock_ops *skops)
{
	struct mw_orig4 *orig, *stored;
	struct mw_tuple4 t;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		orig = skops->sk ? bpf_sk_storage_get(&mw_orig_sk, skops->sk, NULL, 0) : NULL;
		if (!orig)
			return;
		floor_tuple(skops, &t, 0);
		bpf_map_update_elem(&mw_orig_tuple4, &t, orig, BPF_ANY);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		return;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		floor_tuple(skops, &t, 1);
		orig = bpf_map_lookup_elem(&mw_orig_tuple4, &t);
		if (!orig || !skops->sk)
			return;
		stored = bpf_sk_storage_get(&mw_orig_sk, skops->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!stored)
			return;
		stored->ip4 = orig->ip4;
		stored->port = orig->port;
		stored->flags = MW_ORIG_F_ACCEPTED;
		bpf_map_delete_elem(&mw_orig_tuple4, &t);
		return;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE || !skops->sk)
			return;
		orig = bpf_sk_storage_get(&mw_orig_sk, skops->sk, NULL, 0);
		if (!orig || (orig->flags & MW_ORIG_F_ACCEPTED))
			return;
		floor_tuple(skops, &t, 0);
		bpf_map_delete_elem(&mw_orig_tuple4, &t);
		return;
	}
}

SEC("sockops")
int floor_sockops_plain_path(struct bpf_sock_ops *skops)
{
	floor_sockops_plain(skops);
	return 1;
}

/*
 * The same and what acceleration cannot do without on top, on a hop's two
 * ends: each end's pod looked up (mw_pods), the connecting end's hint
 * (an LRU lookup in mw_accel_hints), the accepted end's peer's state; each
 * end into the socket map (bpf_sock_hash_update) and its mw_accel_state
 * entry inserted; its state callbacks asked for; at each end's close its
 * entry deleted.
 */
SEC("sockops")
int floor_sockops_accel_path(struct bpf_sock_ops *skops)
{
	struct mw_accel_state fresh = {};
	struct mw_accel_hint_key hk = {};
	struct mw_sock_key key = {}, peer = {};
	__u64 cookie;

	floor_sockops_plain(skops);
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		cookie = bpf_get_netns_cookie(skops);
		floor_sock_key(skops, &key, 0);
		if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
			floor_sock_key(skops, &peer, 1);
			bpf_map_lookup_elem(&mw_accel_state, &peer);
		} else {
			hk.netns_cookie = cookie;
			hk.ip[0] = skops->remote_ip4;
			hk.port = bpf_ntohl(skops->remote_port);
			bpf_map_lookup_elem(&mw_accel_hints, &hk);
			fresh.flags = MW_ACCEL_CONNECT;
		}
		bpf_map_lookup_elem(&mw_pods, &cookie);
		if (bpf_sock_hash_update(skops, &mw_sock_hash, &key, BPF_ANY))
			return 1;
		bpf_map_update_elem(&mw_accel_state, &key, &fresh, BPF_ANY);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE) {
			floor_sock_key(skops, &key, 0);
			bpf_map_delete_elem(&mw_accel_state, &key);
		}
		return 1;
	}
	return 1;
}

/*
 * The origin's own part of sockops, for each store, behind the connect4
 * floor of that store (hooks.py: FLOOR_STEER): at the connecting end's
 * established, the origin read (mw_sockops reads it to publish it) and its
 * close callback asked for (as mw_sockops_published asks); at its close, if
 * delete, what that store needs done. Socket storage: nothing (the kernel
 * frees it with the socket, outside any program), or that free made visible:
 * the storage deleted (bpf_sk_storage_delete unlinks and frees what
 * sk_destruct's bpf_sk_storage_free would). A cookie map: the entry deleted;
 * a connection that never reaches established (a failed connect) never asks
 * for its close, and its entry stays; or nothing, when sock_release deletes
 * it (floor_release_cookie_hash).
 */
static __always_inline void floor_sockops_orig(struct bpf_sock_ops *skops, void *cookie_map, int delete)
{
	__u64 cookie;

	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		if (cookie_map) {
			cookie = bpf_get_socket_cookie(skops);
			if (!bpf_map_lookup_elem(cookie_map, &cookie))
				return;
		} else if (!skops->sk || !bpf_sk_storage_get(&mw_orig_sk, skops->sk, NULL, 0)) {
			return;
		}
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		return;
	}
	if (!delete || skops->op != BPF_SOCK_OPS_STATE_CB || skops->args[1] != BPF_TCP_CLOSE)
		return;
	if (cookie_map) {
		cookie = bpf_get_socket_cookie(skops);
		bpf_map_delete_elem(cookie_map, &cookie);
	} else if (skops->sk) {
		bpf_sk_storage_delete(&mw_orig_sk, skops->sk);
	}
}

SEC("sockops")
int floor_sockops_orig_storage(struct bpf_sock_ops *skops)
{
	floor_sockops_orig(skops, NULL, 0);
	return 1;
}

SEC("sockops")
int floor_sockops_orig_storage_free(struct bpf_sock_ops *skops)
{
	floor_sockops_orig(skops, NULL, 1);
	return 1;
}

SEC("sockops")
int floor_sockops_orig_cookie_lru(struct bpf_sock_ops *skops)
{
	floor_sockops_orig(skops, &floor_orig_cookie_lru, 1);
	return 1;
}

SEC("sockops")
int floor_sockops_orig_cookie_hash(struct bpf_sock_ops *skops)
{
	floor_sockops_orig(skops, &floor_orig_cookie_hash, 1);
	return 1;
}

/* The same with the delete left to sock_release (floor_release_cookie_hash). */
SEC("sockops")
int floor_sockops_orig_cookie_hash_read(struct bpf_sock_ops *skops)
{
	floor_sockops_orig(skops, &floor_orig_cookie_hash, 0);
	return 1;
}

/* ---- cgroup/sock_release: run as each socket of the connection is released ---- */

SEC("cgroup/sock_release")
int floor_release_empty(struct bpf_sock *sk)
{
	return 1;
}

/*
 * The cookie map's entry deleted when its socket is released (close() of its
 * last descriptor), behind floor_connect4_cookie_hash: a failed connect's too,
 * and a UDP socket's (which has no sockops), so nothing stays behind; on
 * every socket of the cgroup, the accepted end's (a miss) included.
 */
SEC("cgroup/sock_release")
int floor_release_cookie_hash(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);

	bpf_map_delete_elem(&floor_orig_cookie_hash, &cookie);
	return 1;
}
