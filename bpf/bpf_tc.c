// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc on a meshed pod's interface (inside its netns): inbound connections from
 * other nodes are steered to the sidecar's inbound port.
 *
 * Ingress rewrites the destination port of a connection's SYN from the port
 * the peer dialled to mw_cfg.inbound_port and records the handshake in
 * mw_flow4_syn; egress rewrites the source port of the sidecar's SYN-ACK
 * back and notes its sequence number. Only the peer's ACK of that SYN-ACK
 * moves the flow into mw_flow4, where later packets find it both ways. So a
 * SYN flood churns mw_flow4_syn alone and cannot evict established flows,
 * and a spoofed SYN, which can never complete the handshake, cannot take an
 * established flow's entry over. A flow is forgotten on RST, or once both
 * FINs were sent and acknowledged (the acknowledging packet itself is still
 * rewritten); LRU bounds the rest.
 *
 * IPv6 the same way with interception.ipv6 = "intercept", the default
 * (extension headers walked; mw_flow6, mw_flow6_syn and mw_flow6_fin, keyed
 * by IPv6 addresses, hold the same state); every function below serves both
 * families, is6 choosing the maps (a constant once inlined). With "refuse" an
 * IPv6 SYN to the pod is dropped instead (mw_tc_ingress6_refused).
 *
 * Both programs return TC_ACT_UNSPEC (tcx: next program; clsact: continue),
 * so the CNI's own programs still run. The exceptions are those SYNs and a packet whose
 * rewrite failed half way (or a SYN whose flow could not be recorded): it is
 * dropped and counted as MW_STAT_TC_ERROR. TCP retransmits it; letting it
 * through would send it past the sidecar or with a wrong checksum.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_l4.h"
#include "lib/meshwire_policy.h"
#include "lib/meshwire_trace.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* The family's flow maps: is6 is a constant at every call once inlined. */
static __always_inline void *mw_flows(const int is6)
{
	return is6 ? (void *)&mw_flow6 : (void *)&mw_flow4;
}

static __always_inline void *mw_flow_fins(const int is6)
{
	return is6 ? (void *)&mw_flow6_fin : (void *)&mw_flow4_fin;
}

static __always_inline void *mw_flow_syns(const int is6)
{
	return is6 ? (void *)&mw_flow6_syn : (void *)&mw_flow4_syn;
}

static __always_inline void mw_flow_forget(const void *key, const int is6)
{
	if (bpf_map_delete_elem(mw_flows(is6), key) == 0)
		mw_count(MW_STAT_TC_FLOW_CLOSED);
	bpf_map_delete_elem(mw_flow_fins(is6), key);
}

/*
 * Follow the end of a flow through one of its packets; ingress: from the
 * remote peer, else from the pod. Returns 1 when the flow is over once this
 * packet has passed: it is a RST, or it acknowledges the second of the two
 * FINs. Ingress and egress may race on one flow (simultaneous close); a lost
 * update only leaves the entry to the LRU.
 */
static __always_inline int mw_flow_track_close(const void *key, struct mw_flow4 *flow,
					       const struct mw_tcp4 *t, const int ingress,
					       const int is6)
{
	const __u16 fin_this = ingress ? MW_FLOW_F_FIN_IN : MW_FLOW_F_FIN_OUT;
	const __u16 fin_other = ingress ? MW_FLOW_F_FIN_OUT : MW_FLOW_F_FIN_IN;
	struct mw_flow4_fin *fin, zero = {};
	__u32 end;

	if (t->flags & MW_TCP_RST)
		return 1;
	if (!(t->flags & MW_TCP_FIN) && !(flow->flags & (MW_FLOW_F_FIN_IN | MW_FLOW_F_FIN_OUT)))
		return 0;

	fin = bpf_map_lookup_elem(mw_flow_fins(is6), key);
	if (!fin) {
		if (!(t->flags & MW_TCP_FIN))
			return 0;
		/* NOEXIST: the other direction may have created it meanwhile. */
		bpf_map_update_elem(mw_flow_fins(is6), key, &zero, BPF_NOEXIST);
		fin = bpf_map_lookup_elem(mw_flow_fins(is6), key);
		if (!fin) {
			mw_count(MW_STAT_TC_ERROR);
			return 0;
		}
	}

	if (t->flags & MW_TCP_FIN) {
		end = t->seq + t->seg_len + 1;
		if (ingress)
			fin->in_end = end;
		else
			fin->out_end = end;
		flow->flags |= fin_this;
	}

	/* This packet acknowledges the other side's FIN? */
	if ((t->flags & MW_TCP_ACK) && (flow->flags & fin_other)) {
		if (ingress && mw_seq_after_eq(t->ack_seq, fin->out_end))
			fin->acked |= MW_FIN_ACKED_OUT;
		else if (!ingress && mw_seq_after_eq(t->ack_seq, fin->in_end))
			fin->acked |= MW_FIN_ACKED_IN;
	}
	return (fin->acked & (MW_FIN_ACKED_IN | MW_FIN_ACKED_OUT)) ==
	       (MW_FIN_ACKED_IN | MW_FIN_ACKED_OUT);
}

/* A 16-bit one's complement checksum with one 16-bit word changed (RFC 1624). */
static __always_inline __u16 mw_csum16_replace(__u16 csum, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~csum + (__u32)(__u16)~from + to;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The checksum of a reset: its pseudo header and TCP header, summed whole. */
static __always_inline int mw_tc_reset_csum(void *rst, __u32 size, struct tcphdr *th)
{
	__s64 sum = bpf_csum_diff(NULL, 0, rst, size, 0);

	if (sum < 0)
		return -1;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	th->check = (__u16)~sum;
	return 0;
}

/* The reset's TCP header: ports swapped, RST|ACK acknowledging the SYN t. */
static __always_inline void mw_tc_reset_tcp(struct tcphdr *th, const struct mw_tcp4 *t)
{
	th->source = t->dport;
	th->dest = t->sport;
	th->ack_seq = bpf_htonl(t->seq + 1 + t->seg_len);
	th->doff = sizeof(struct tcphdr) / 4;
	th->rst = 1;
	th->ack = 1;
}

/* The frame's MAC addresses swapped, for the way back. */
static __always_inline int mw_tc_swap_macs(struct __sk_buff *skb)
{
	__u8 mac[12], swapped[12];
	int i;

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return -1;
	for (i = 0; i < 6; i++) {
		swapped[i] = mac[i + 6];
		swapped[i + 6] = mac[i];
	}
	return bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) ? -1 : 0;
}

/*
 * Answer the IPv4 SYN t with a reset, built in place and sent back out of the
 * interface it came in on: MACs, addresses and ports swapped (which leaves
 * every checksum as it was), the TCP header without options or payload,
 * RST|ACK acknowledging the SYN (RFC 9293: seq 0, ack SYN's seq + its
 * length). The TCP checksum is computed whole; a CHECKSUM_PARTIAL SYN came
 * from a socket of this host, whose stack trusts the answer as it trusted
 * the SYN. Returns the verdict: the redirect, or TC_ACT_SHOT when the reset
 * cannot be built.
 */
static __always_inline int mw_tc_reset4(struct __sk_buff *skb, const struct mw_tcp4 *t)
{
	__u32 ihl_len = t->l4_off - ETH_HLEN;
	struct {
		__u32 saddr;
		__u32 daddr;
		__u8 zero;
		__u8 proto;
		__u16 len;
		struct tcphdr th;
	} rst = {
		.saddr = t->daddr,
		.daddr = t->saddr,
		.proto = IPPROTO_TCP,
		.len = bpf_htons(sizeof(struct tcphdr)),
	};
	__u16 old_len, new_len = bpf_htons(ihl_len + sizeof(struct tcphdr)), ip_csum;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, tot_len), &old_len, 2) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, check), &ip_csum, 2))
		return TC_ACT_SHOT;
	mw_tc_reset_tcp(&rst.th, t);
	if (mw_tc_reset_csum(&rst, sizeof(rst), &rst.th))
		return TC_ACT_SHOT;
	ip_csum = mw_csum16_replace(ip_csum, old_len, new_len);

	/* Options and payload go first; stores then keep a CHECKSUM_COMPLETE
	 * skb->csum in step (BPF_F_RECOMPUTE_CSUM). */
	if (bpf_skb_change_tail(skb, t->l4_off + sizeof(struct tcphdr), 0) ||
	    mw_tc_swap_macs(skb) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, tot_len), &new_len, 2,
				BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, check), &ip_csum, 2,
				BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, saddr), &rst.saddr, 4,
				BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, daddr), &rst.daddr, 4,
				BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, t->l4_off, &rst.th, sizeof(rst.th), BPF_F_RECOMPUTE_CSUM))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * mw_tc_reset4 for an IPv6 SYN: the extension headers are dropped (the
 * reset's TCP header follows the fixed header, next header TCP, payload
 * length 20), addresses swapped; IPv6 has no header checksum.
 */
static __always_inline int mw_tc_reset6(struct __sk_buff *skb, const struct mw_tcp4 *t)
{
	struct {
		__u32 saddr[4];
		__u32 daddr[4];
		__u32 len;
		__u8 zero[3];
		__u8 next;
		struct tcphdr th;
	} rst = {
		.len = bpf_htonl(sizeof(struct tcphdr)),
		.next = IPPROTO_TCP,
	};
	__u16 payload_len = bpf_htons(sizeof(struct tcphdr));
	__u8 next = IPPROTO_TCP;

	__builtin_memcpy(rst.saddr, t->daddr6, sizeof(rst.saddr));
	__builtin_memcpy(rst.daddr, t->saddr6, sizeof(rst.daddr));
	mw_tc_reset_tcp(&rst.th, t);
	if (mw_tc_reset_csum(&rst, sizeof(rst), &rst.th))
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_HLEN + MW_IPV6_HLEN + sizeof(struct tcphdr), 0) ||
	    mw_tc_swap_macs(skb) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 4, &payload_len, 2, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 6, &next, 1, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 8, rst.saddr, 16, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 24, rst.daddr, 16, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + MW_IPV6_HLEN, &rst.th, sizeof(rst.th),
				BPF_F_RECOMPUTE_CSUM))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* The packet's destination (is6 0: t->daddr; 1: t->daddr6), as mw_pod_ip_cookie reads it. */
static __always_inline const __u32 *mw_tc_daddr(const struct mw_tcp4 *t, const int is6)
{
	return is6 ? t->daddr6 : &t->daddr;
}

static __always_inline const __u32 *mw_tc_saddr(const struct mw_tcp4 *t, const int is6)
{
	return is6 ? t->saddr6 : &t->saddr;
}

/*
 * A new connection from a remote peer: steer it to the sidecar, or not.
 * Events carry the addresses of either family; traces IPv4 ones only.
 */
static __always_inline int mw_tc_ingress_syn(struct __sk_buff *skb, const struct mw_tcp4 *t,
					     const void *key, const int is6)
{
	__u16 to = bpf_htons(mw_cfg.inbound_port);
	struct mw_flow4_syn syn = { .orig_port = t->dport };
	__u16 port = bpf_ntohs(t->dport);
	struct mw_flow4 *old;
	const __u64 *pod_cookie;

	/* Only addresses of meshed pods (mw_pod_ips, mw_pod_ips6) are intercepted. */
	pod_cookie = mw_pod_ip_cookie(mw_tc_daddr(t, is6), is6);
	if (!pod_cookie) {
		/*
		 * IPv6: tc sees this pod's traffic only, and an address of it
		 * not registered (link-local, or not from pod add / CNI) would
		 * reach the app past its sidecar: dropped, as "refuse" does.
		 */
		if (is6 && !mw_in_port_listed(0, port)) {
			mw_count(MW_STAT_TC6_DROPPED);
			mw_emit6(MW_HOOK_TC_INGRESS, MW_DEC_TC6_DROPPED, 0, t->saddr6,
				 bpf_ntohs(t->sport), t->daddr6, port, NULL, 0, MW_EV_NO_TASK);
			return TC_ACT_SHOT;
		}
		return TC_ACT_UNSPEC;
	}
	/*
	 * Straight to the sidecar's capture port, from another node or an
	 * unmeshed pod: nothing steered it there, answered with a reset (the
	 * peer's connect() is refused at once). A meshed pod of this node
	 * reaches it only as connect4/6 steered it (they refuse its
	 * connections straight to a capture port).
	 */
	if (mw_is_capture_port(port) && !mw_pod_ip_cookie(mw_tc_saddr(t, is6), is6)) {
		mw_count(MW_STAT_LOOP_REFUSED);
		mw_trace("tc in SYN straight to sidecar port %d reset", port);
		mw_emit_at(MW_HOOK_TC_INGRESS, MW_DEC_LOOP_REFUSED, 0, mw_tc_saddr(t, is6),
			   bpf_ntohs(t->sport), mw_tc_daddr(t, is6), port, NULL, 0, is6,
			   MW_EV_NO_TASK);
		return is6 ? mw_tc_reset6(skb, t) : mw_tc_reset4(skb, t);
	}
	if (mw_in_port_excluded_at(mw_tc_daddr(t, is6), is6, *pod_cookie, port)) {
		mw_count(MW_STAT_TC_EXCLUDED);
		mw_trace("tc in excluded %pI4:%d", &t->daddr, port);
		mw_emit_at(MW_HOOK_TC_INGRESS, MW_DEC_TC_EXCLUDED, 0, mw_tc_saddr(t, is6),
			   bpf_ntohs(t->sport), mw_tc_daddr(t, is6), port, NULL, 0, is6,
			   MW_EV_NO_TASK);
		return TC_ACT_UNSPEC;
	}

	/*
	 * An earlier connection of the same peer port that was closing is over
	 * now. One that was not closing stays until this handshake completes:
	 * the SYN may be spoofed.
	 */
	old = bpf_map_lookup_elem(mw_flows(is6), key);
	if (old && (old->flags & (MW_FLOW_F_FIN_IN | MW_FLOW_F_FIN_OUT))) {
		bpf_map_delete_elem(mw_flows(is6), key);
		bpf_map_delete_elem(mw_flow_fins(is6), key);
	}
	if (bpf_map_update_elem(mw_flow_syns(is6), key, &syn, BPF_ANY)) {
		mw_count(MW_STAT_TC_ERROR);
		mw_trace("tc in no flow entry, dropped SYN from %pI4:%d", &t->saddr,
			 bpf_ntohs(t->sport));
		mw_emit_at(MW_HOOK_TC_INGRESS, MW_DEC_TC_NO_FLOW, 0, mw_tc_saddr(t, is6),
			   bpf_ntohs(t->sport), mw_tc_daddr(t, is6), port, NULL, 0, is6,
			   MW_EV_NO_TASK);
		return TC_ACT_SHOT;
	}

	if (mw_tcp4_set_port(skb, t, MW_TCP_DPORT_OFF, t->dport, to)) {
		bpf_map_delete_elem(mw_flow_syns(is6), key);
		mw_count(MW_STAT_TC_ERROR);
		mw_trace("tc in rewrite failed, dropped SYN from %pI4:%d", &t->saddr,
			 bpf_ntohs(t->sport));
		mw_emit_at(MW_HOOK_TC_INGRESS, MW_DEC_TC_REWRITE_FAILED, 0, mw_tc_saddr(t, is6),
			   bpf_ntohs(t->sport), mw_tc_daddr(t, is6), port, NULL, 0, is6,
			   MW_EV_NO_TASK);
		return TC_ACT_SHOT;
	}
	mw_count(MW_STAT_TC_REDIRECTED);
	mw_trace("tc in %pI4:%d -> sidecar :%d", &t->daddr, port, mw_cfg.inbound_port);
	mw_emit_at(MW_HOOK_TC_INGRESS, MW_DEC_TC_REDIRECTED, 0, mw_tc_saddr(t, is6),
		   bpf_ntohs(t->sport), mw_tc_daddr(t, is6), port, mw_tc_daddr(t, is6),
		   mw_cfg.inbound_port, is6, MW_EV_NO_TASK);
	return TC_ACT_UNSPEC;
}

/*
 * Ingress: the peer's packet goes to the sidecar's port; egress: the
 * sidecar's leaves from the dialled port. 0, or -1 when the rewrite failed
 * (counted and traced; the caller drops the packet).
 */
static __always_inline int mw_tc_rewrite(struct __sk_buff *skb, const struct mw_tcp4 *t,
					 __u16 orig_port, const int ingress, const int is6)
{
	const __u32 *remote = ingress ? mw_tc_saddr(t, is6) : mw_tc_daddr(t, is6);
	const __u32 *local = ingress ? mw_tc_daddr(t, is6) : mw_tc_saddr(t, is6);
	__u16 remote_port = ingress ? t->sport : t->dport;
	int failed;

	if (ingress)
		failed = mw_tcp4_set_port(skb, t, MW_TCP_DPORT_OFF, t->dport,
					  bpf_htons(mw_cfg.inbound_port));
	else
		failed = mw_tcp4_set_port(skb, t, MW_TCP_SPORT_OFF, t->sport, orig_port);
	if (!failed)
		return 0;
	mw_count(MW_STAT_TC_ERROR);
	mw_trace("tc rewrite failed, dropped a packet of %pI4:%d (ingress %d)",
		 remote, bpf_ntohs(remote_port), ingress);
	mw_emit_at(ingress ? MW_HOOK_TC_INGRESS : MW_HOOK_TC_EGRESS, MW_DEC_TC_REWRITE_FAILED,
		   0, remote, bpf_ntohs(remote_port), local, bpf_ntohs(orig_port), local,
		   mw_cfg.inbound_port, is6, MW_EV_NO_TASK);
	return -1;
}

/*
 * A packet of a redirected flow (ingress: from the peer, to be rewritten to
 * the sidecar's port; else from the sidecar, back to the dialled port).
 * The packet that ends the flow is rewritten too, then the flow forgotten.
 */
static __always_inline int mw_tc_flow_packet(struct __sk_buff *skb, const struct mw_tcp4 *t,
					     const void *key, struct mw_flow4 *flow,
					     const int ingress, const int is6)
{
	const __u32 *remote = ingress ? mw_tc_saddr(t, is6) : mw_tc_daddr(t, is6);
	const __u32 *local = ingress ? mw_tc_daddr(t, is6) : mw_tc_saddr(t, is6);
	__u16 remote_port = ingress ? t->sport : t->dport;
	__u16 orig_port = flow->orig_port;
	int over = mw_flow_track_close(key, flow, t, ingress, is6);

	if (mw_tc_rewrite(skb, t, orig_port, ingress, is6))
		return TC_ACT_SHOT;
	if (over) {
		mw_flow_forget(key, is6);
		mw_trace("tc flow of %pI4:%d closed", remote, bpf_ntohs(remote_port));
		mw_emit_at(ingress ? MW_HOOK_TC_INGRESS : MW_HOOK_TC_EGRESS, MW_DEC_TC_FLOW_CLOSED,
			   0, remote, bpf_ntohs(remote_port), local, bpf_ntohs(orig_port), local,
			   mw_cfg.inbound_port, is6, MW_EV_NO_TASK);
	}
	return TC_ACT_UNSPEC;
}

/* The handshake's packets are rewritten like a flow's; a RST ends it. */
static __always_inline int mw_tc_handshake_packet(struct __sk_buff *skb, const struct mw_tcp4 *t,
						  const void *key, __u16 orig_port,
						  const int ingress, const int is6)
{
	if (mw_tc_rewrite(skb, t, orig_port, ingress, is6))
		return TC_ACT_SHOT;
	if ((t->flags & MW_TCP_RST) && bpf_map_delete_elem(mw_flow_syns(is6), key) == 0)
		mw_count(MW_STAT_TC_FLOW_CLOSED);
	return TC_ACT_UNSPEC;
}

/*
 * From the peer, not (or not yet) a packet of an established flow: the one
 * that acknowledges the sidecar's SYN-ACK moves the handshake into mw_flow4
 * (replacing what an earlier connection of the same peer port left there)
 * and goes on as the flow's first packet.
 */
static __always_inline int mw_tc_ingress_handshake(struct __sk_buff *skb, const struct mw_tcp4 *t,
						   const void *key, const int is6)
{
	struct mw_flow4_syn *syn = bpf_map_lookup_elem(mw_flow_syns(is6), key);
	struct mw_flow4 *flow, fresh = {};

	if (!syn || syn->orig_port != t->dport)
		return TC_ACT_UNSPEC;
	if (!(t->flags & MW_TCP_ACK) || (t->flags & MW_TCP_RST) ||
	    !(syn->flags & MW_SYN_F_SYNACK) || t->ack_seq != syn->synack_end)
		return mw_tc_handshake_packet(skb, t, key, syn->orig_port, 1, is6);

	fresh.orig_port = syn->orig_port;
	if (bpf_map_update_elem(mw_flows(is6), key, &fresh, BPF_ANY)) {
		mw_count(MW_STAT_TC_ERROR);
		return TC_ACT_SHOT;	/* the peer retransmits; the handshake is still there */
	}
	bpf_map_delete_elem(mw_flow_fins(is6), key);
	bpf_map_delete_elem(mw_flow_syns(is6), key);
	flow = bpf_map_lookup_elem(mw_flows(is6), key);
	if (!flow) {
		mw_count(MW_STAT_TC_ERROR);
		return TC_ACT_SHOT;
	}
	return mw_tc_flow_packet(skb, t, key, flow, 1, is6);
}

/* The sidecar's SYN-ACK: rewritten back, its end noted for the peer's ACK. */
static __always_inline int mw_tc_egress_synack(struct __sk_buff *skb, const struct mw_tcp4 *t,
					       const void *key, const int is6)
{
	struct mw_flow4_syn *syn = bpf_map_lookup_elem(mw_flow_syns(is6), key);

	if (!syn)
		return TC_ACT_UNSPEC;
	syn->synack_end = t->seq + 1;
	syn->flags |= MW_SYN_F_SYNACK;
	return mw_tc_handshake_packet(skb, t, key, syn->orig_port, 0, is6);
}

/*
 * A packet's flow key, the same for both directions of a flow: the remote
 * peer is the source of what comes in (ingress 1) and the destination of what
 * the pod sends out (ingress 0). ingress is a constant once inlined.
 */
static __always_inline void mw_tc_flow_key4(struct mw_flow4_key *key, const struct mw_tcp4 *t,
					    const int ingress)
{
	key->remote_ip4 = ingress ? t->saddr : t->daddr;
	key->local_ip4 = ingress ? t->daddr : t->saddr;
	key->remote_port = ingress ? t->sport : t->dport;
}

static __always_inline void mw_tc_flow_key6(struct mw_flow6_key *key, const struct mw_tcp4 *t,
					    const int ingress)
{
	__builtin_memcpy(key->remote_ip6, ingress ? t->saddr6 : t->daddr6, sizeof(key->remote_ip6));
	__builtin_memcpy(key->local_ip6, ingress ? t->daddr6 : t->saddr6, sizeof(key->local_ip6));
	key->remote_port = ingress ? t->sport : t->dport;
}

/* A TCP packet from the peer (either family; key: its flow's). */
static __always_inline int mw_tc_ingress_tcp(struct __sk_buff *skb, const struct mw_tcp4 *t,
					     const void *key, const int is6)
{
	struct mw_flow4 *flow;

	if ((t->flags & (MW_TCP_SYN | MW_TCP_ACK)) == MW_TCP_SYN)
		return mw_tc_ingress_syn(skb, t, key, is6);
	flow = bpf_map_lookup_elem(mw_flows(is6), key);
	/* Same peer and port, other local port: maybe a new connection's handshake. */
	if (!flow || flow->orig_port != t->dport)
		return mw_tc_ingress_handshake(skb, t, key, is6);
	return mw_tc_flow_packet(skb, t, key, flow, 1, is6);
}

/* A TCP packet from the pod's sidecar inbound port (either family). */
static __always_inline int mw_tc_egress_tcp(struct __sk_buff *skb, const struct mw_tcp4 *t,
					    const void *key, const int is6)
{
	struct mw_flow4_syn *syn;
	struct mw_flow4 *flow;

	if (t->flags & MW_TCP_SYN)
		return mw_tc_egress_synack(skb, t, key, is6);
	flow = bpf_map_lookup_elem(mw_flows(is6), key);
	if (flow)
		return mw_tc_flow_packet(skb, t, key, flow, 0, is6);
	/* The sidecar refusing a handshake (RST), before any flow. */
	syn = bpf_map_lookup_elem(mw_flow_syns(is6), key);
	if (!syn)
		return TC_ACT_UNSPEC;
	return mw_tc_handshake_packet(skb, t, key, syn->orig_port, 0, is6);
}

/*
 * interception.ipv6 = "refuse": tc does not steer native IPv6, so a
 * connection from another node (or an unmeshed pod) over IPv6 would reach
 * the app past its sidecar. Its SYN is dropped instead, unless the port is
 * in the node-wide excluded inbound ports. "pass": untouched.
 */
static __always_inline int mw_tc_ingress6_refused(struct __sk_buff *skb, const struct mw_tcp4 *t)
{
	__u16 port = bpf_ntohs(t->dport);

	if (mw_cfg.ipv6 == MW_IPV6_PASS ||
	    (t->flags & (MW_TCP_SYN | MW_TCP_ACK)) != MW_TCP_SYN || mw_in_port_listed(0, port))
		return TC_ACT_UNSPEC;
	mw_count(MW_STAT_TC6_DROPPED);
	mw_trace("tc in IPv6 SYN to port %d dropped", port);
	mw_emit6(MW_HOOK_TC_INGRESS, MW_DEC_TC6_DROPPED, 0, t->saddr6, bpf_ntohs(t->sport),
		 t->daddr6, port, NULL, 0, MW_EV_NO_TASK);
	return TC_ACT_SHOT;
}

/* An IPv6 packet from the peer: steered with "intercept", else refused or passed. */
static __always_inline int mw_tc_ingress6(struct __sk_buff *skb)
{
	struct mw_flow6_key key = {};
	struct mw_tcp4 t = {};

	if (mw_parse_tcp6(skb, &t) != MW_PARSE_TCP)
		return TC_ACT_UNSPEC;
	if (mw_cfg.ipv6 != MW_IPV6_INTERCEPT)
		return mw_tc_ingress6_refused(skb, &t);
	mw_tc_flow_key6(&key, &t, 1);
	return mw_tc_ingress_tcp(skb, &t, &key, 1);
}

static __always_inline int mw_tc_egress6(struct __sk_buff *skb)
{
	struct mw_flow6_key key = {};
	struct mw_tcp4 t = {};

	if (mw_cfg.ipv6 != MW_IPV6_INTERCEPT || mw_parse_tcp6(skb, &t) != MW_PARSE_TCP ||
	    t.sport != bpf_htons(mw_cfg.inbound_port))
		return TC_ACT_UNSPEC;
	mw_tc_flow_key6(&key, &t, 0);
	return mw_tc_egress_tcp(skb, &t, &key, 1);
}

SEC("tc")
int mw_tc_ingress(struct __sk_buff *skb)
{
	struct mw_flow4_key key = {};
	struct mw_tcp4 t = {};
	enum mw_parse parsed;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return mw_tc_ingress6(skb);
	parsed = mw_parse_tcp4(skb, &t);
	if (parsed == MW_PARSE_BAD)
		mw_trace("tc in malformed IPv4 packet, passed");
	if (parsed == MW_PARSE_BAD)
		mw_emit(MW_HOOK_TC_INGRESS, MW_DEC_TC_MALFORMED, 0, 0, 0, 0, 0, 0, 0, MW_EV_NO_TASK);
	if (parsed != MW_PARSE_TCP)
		return TC_ACT_UNSPEC;
	mw_tc_flow_key4(&key, &t, 1);
	return mw_tc_ingress_tcp(skb, &t, &key, 0);
}

SEC("tc")
int mw_tc_egress(struct __sk_buff *skb)
{
	struct mw_flow4_key key = {};
	struct mw_tcp4 t = {};

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return mw_tc_egress6(skb);
	if (mw_parse_tcp4(skb, &t) != MW_PARSE_TCP)
		return TC_ACT_UNSPEC;
	if (t.sport != bpf_htons(mw_cfg.inbound_port))
		return TC_ACT_UNSPEC;
	mw_tc_flow_key4(&key, &t, 0);
	return mw_tc_egress_tcp(skb, &t, &key, 0);
}
