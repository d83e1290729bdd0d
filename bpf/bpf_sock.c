// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup sock_addr hooks: steer a meshed pod's connect() into its sidecar.
 * connect4 for AF_INET sockets, connect6 for AF_INET6 sockets dialling an
 * IPv4 destination as a v4-mapped address (::ffff:a.b.c.d); both decide
 * through mw_sock4_steer. Native IPv6 destinations follow interception.ipv6:
 * steered to [::1] ("intercept", the default), refused ("refuse") or let
 * through ("pass").
 *
 * DNS capture ([dns]): a pod's DNS to port 53 goes to its sidecar's DNS
 * proxy on 127.0.0.1:<dns_port>. TCP through connect4 like any steered
 * connection; UDP through connect4 (connected sockets) and sendmsg4 (each
 * datagram of an unconnected one), the resolver noted on the socket so that
 * recvmsg4 and getpeername4 answer it: resolvers check where answers come from.
 * A native IPv6 resolver's queries go to [::1]:<dns_port> the same way
 * (connect6, sendmsg6, recvmsg6, getpeername6; the resolver in mw_orig6_sk),
 * whatever interception.ipv6 says: DNS capture is the pod's [dns] setting.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_policy.h"
#include "lib/meshwire_trace.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* asm-generic/socket.h */
#define MW_SOL_SOCKET		1
#define MW_SO_BINDTOIFINDEX	62

/*
 * Keep clang from sinking ctx stores of two paths into one tail that stores
 * through a moved ctx pointer, which the verifier refuses ("dereference of
 * modified ctx ptr"): inline assembly is never merged.
 */
#define mw_ctx_stores_done()	asm volatile("" ::: "memory")

/* A connect()'s IPv4 destination, network order; the hooks rewrite it. */
struct mw_dest4 {
	__u32 ip4;
	__u16 port;
	__u8 hook;		/* MW_HOOK_CONNECT4 or MW_HOOK_CONNECT6, for events */
	__u8 rewritten;		/* ip4/port now name the sidecar */
};

/* An AF_INET6 socket's address that is an IPv4 one (::ffff:a.b.c.d). */
static __always_inline int mw_sock6_v4mapped(struct bpf_sock_addr *ctx)
{
	return mw_is_v4mapped(ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2]);
}

/*
 * ctx's IPv6 address into ip6, one 4-byte load per word: the verifier
 * refuses the merged or narrowed loads clang would otherwise make.
 */
static __always_inline void mw_sock6_addr(struct bpf_sock_addr *ctx, __u32 *ip6)
{
	const volatile __u32 *w = ctx->user_ip6;

	ip6[0] = w[0];
	ip6[1] = w[1];
	ip6[2] = w[2];
	ip6[3] = w[3];
}

/*
 * Note on the socket where it was going (mw_orig_sk): MW_ORIG_F_CONNECT for
 * the sidecar that will accept it. -1 when there is no storage.
 */
static __always_inline int mw_sock4_note(void *sk, const struct mw_dest4 *dst,
					 __u16 flags)
{
	struct mw_orig4 *orig;

	orig = bpf_sk_storage_get(&mw_orig_sk, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return -1;
	orig->ip4 = dst->ip4;
	orig->port = dst->port;
	orig->flags = flags;
	return 0;
}

/*
 * An MPTCP socket: connect4 runs on its first subflow (a TCP socket), while
 * getpeername() asks the MPTCP socket itself. Note the destination there too
 * so getpeername() answers it. Not an MPTCP subflow: nothing to do.
 */
static __always_inline void mw_sock4_mark_mptcp(struct bpf_sock_addr *ctx,
						const struct mw_dest4 *dst)
{
	struct mptcp_sock *msk = bpf_skc_to_mptcp_sock(ctx->sk);

	if (msk)
		mw_sock4_note(msk, dst, MW_ORIG_F_CONNECT);
}

/* SO_BINDTOIFINDEX 0: the socket is bound to no device. 0, or an error. */
static __always_inline int mw_sock4_unbind_device(struct bpf_sock_addr *ctx)
{
	int no_device = 0;

	return bpf_setsockopt(ctx, MW_SOL_SOCKET, MW_SO_BINDTOIFINDEX, &no_device,
			      sizeof(no_device));
}

/*
 * The end of a sidecar's same-node inbound decision (mw_inbound_of), both
 * families: counted, traced and its verdict. For MW_INBOUND_STEER the
 * caller noted the destination on the socket (noted: 0, or -1 when it could
 * not: refused, fail closed) and sends it to the peer's inbound port. addr:
 * the address dialled, as for mw_inbound_of (one word, or four for is6);
 * port in host order.
 */
static __always_inline int mw_sock_inbound_verdict(struct bpf_sock *sk, enum mw_inbound in,
						   int noted, __u8 hook, __u64 netns_cookie,
						   const __u32 *addr, const int is6, __u16 port)
{
	if (in == MW_INBOUND_EXCLUDED) {
		mw_count(MW_STAT_CONNECT_EXCLUDED);
		mw_emit_at(hook, MW_DEC_CONNECT_EXCLUDED, netns_cookie, NULL, 0, addr, port, NULL,
			   0, is6, MW_EV_SOCK(sk));
		return MW_ALLOW;
	}
	if (noted) {
		mw_count(MW_STAT_CONNECT_ERROR);
		mw_emit_at(hook, MW_DEC_CONNECT_REFUSED, netns_cookie, NULL, 0, addr, port, NULL,
			   0, is6, MW_EV_SOCK(sk));
		return MW_DENY;
	}
	mw_count(MW_STAT_CONNECT_INBOUND);
	mw_emit_at(hook, MW_DEC_CONNECT_INBOUND, netns_cookie, NULL, 0, addr, port, addr,
		   mw_cfg.inbound_port, is6, MW_EV_SOCK(sk));
	return MW_ALLOW;
}

/*
 * Inbound, same node: a sidecar dials an app port of another meshed pod on
 * this node; send it to that pod's sidecar inbound port instead. Dialling its
 * own pod is the sidecar handing an inbound connection to its app: untouched,
 * and nothing noted on the socket (sockops tells that hop by the socket's
 * owner to accelerate it, mw_sockops_is_delivery).
 */
static __always_inline int mw_sock4_redirect_inbound(struct bpf_sock_addr *ctx,
						     __u64 netns_cookie,
						     struct mw_dest4 *dst)
{
	__u32 dst_ip4 = dst->ip4;
	__u16 dst_port = dst->port;
	enum mw_inbound in = mw_inbound_of(netns_cookie, &dst_ip4, 0, bpf_ntohs(dst_port));
	int noted = 0, verdict;

	if (in == MW_INBOUND_NONE || in == MW_INBOUND_OWN)
		return MW_ALLOW;
	if (in == MW_INBOUND_STEER)
		noted = mw_sock4_note(ctx->sk, dst, MW_ORIG_F_CONNECT);
	verdict = mw_sock_inbound_verdict(ctx->sk, in, noted, dst->hook, netns_cookie, &dst_ip4,
					  0, bpf_ntohs(dst_port));
	if (in == MW_INBOUND_STEER && !noted) {
		dst->port = bpf_htons(mw_cfg.inbound_port);
		dst->rewritten = 1;
		mw_trace("connect inbound %pI4:%d -> sidecar :%d", &dst_ip4,
			 bpf_ntohs(dst_port), mw_cfg.inbound_port);
	}
	return verdict;
}

/*
 * A pod's connections to its sidecar all go to 127.0.0.1:port, so from one
 * source address they share its ephemeral ports (~28k, and connect() slows
 * as they fill). With [interception] outbound_sources > 1, a socket the app
 * has not bound is bound to one of that many loopback addresses first
 * (127.128.0.1 onwards, ::ffff:127.128.0.x for a dual-stack socket), picked
 * by its cookie; connect() still chooses the port. Should the bind fail, the
 * kernel picks 127.0.0.1 as without it. TCP to the outbound port only.
 */
static __always_inline void mw_sock4_spread_source(struct bpf_sock_addr *ctx)
{
	__u32 n = mw_cfg.out_sources;
	__u32 src;

	if (n <= 1 || ctx->sk->src_port)
		return;
	src = bpf_htonl(MW_OUT_SRC_ADDR4 + (__u32)(bpf_get_socket_cookie(ctx) % n));
	if (ctx->family == MW_AF_INET) {
		struct sockaddr_in sin = { .sin_family = MW_AF_INET };

		if (ctx->sk->src_ip4)
			return;
		sin.sin_addr.s_addr = src;
		bpf_bind(ctx, (struct sockaddr *)&sin, sizeof(sin));
	} else {
		const volatile __u32 *bound = ctx->sk->src_ip6;
		struct sockaddr_in6 sin6 = { .sin6_family = MW_AF_INET6 };

		if (bound[0] | bound[1] | bound[2] | bound[3])
			return;
		sin6.sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(MW_V4MAPPED_PREFIX);
		sin6.sin6_addr.in6_u.u6_addr32[3] = src;
		bpf_bind(ctx, (struct sockaddr *)&sin6, sizeof(sin6));
	}
}

/*
 * Note where *dst was going on the socket (flags: what for) and send it to
 * 127.0.0.1:port of the sidecar. -1 when that cannot be done and the caller
 * must refuse: sent without its destination the sidecar would be blind, and
 * letting it go direct would bypass the mesh (fail closed).
 */
static __always_inline int mw_sock4_to_sidecar(struct bpf_sock_addr *ctx,
					       struct mw_dest4 *dst, __u16 port,
					       __u16 flags)
{
	if (mw_sock4_note(ctx->sk, dst, flags))
		return -1;
	mw_sock4_mark_mptcp(ctx, dst);
	/*
	 * A socket bound to a device (SO_BINDTODEVICE eth0) would send to
	 * 127.0.0.1 out of that device and hang: unbind it, the sidecar
	 * decides the way out. If that fails, refuse at once.
	 */
	if (ctx->sk->bound_dev_if && mw_sock4_unbind_device(ctx))
		return -1;
	dst->ip4 = bpf_htonl(MW_LOOPBACK_ADDR4);
	dst->port = bpf_htons(port);
	dst->rewritten = 1;
	return 0;
}

/*
 * DNS capture: a query to a resolver goes to the pod's DNS proxy, the
 * resolver noted on the socket (MW_ORIG_F_CONNECT too for TCP, so that the
 * proxy reads it with SO_ORIGINAL_DST as for any steered connection).
 */
static __always_inline int mw_sock4_capture_dns(struct bpf_sock_addr *ctx,
						__u64 netns_cookie,
						struct mw_dest4 *dst)
{
	__u16 flags = MW_ORIG_F_DNS;
	__u32 dst_ip4 = dst->ip4;

	if (ctx->type == MW_SOCK_STREAM)
		flags |= MW_ORIG_F_CONNECT;
	if (mw_sock4_to_sidecar(ctx, dst, mw_cfg.dns_port, flags)) {
		mw_count(MW_STAT_DNS_ERROR);
		mw_trace("dns refused %pI4", &dst_ip4);
		mw_emit(dst->hook, MW_DEC_DNS_REFUSED, netns_cookie, 0, 0, dst_ip4,
			MW_DNS_PORT, 0, 0, MW_EV_SOCK(ctx->sk));
		return MW_DENY;
	}
	mw_count(MW_STAT_DNS_REDIRECTED);
	mw_trace("dns %pI4 -> proxy :%d", &dst_ip4, mw_cfg.dns_port);
	mw_emit(dst->hook, MW_DEC_DNS_REDIRECTED, netns_cookie, 0, 0, dst_ip4,
		MW_DNS_PORT, bpf_htonl(MW_LOOPBACK_ADDR4), mw_cfg.dns_port, MW_EV_SOCK(ctx->sk));
	return MW_ALLOW;
}

/*
 * A UDP socket's destination, at connect() (connecting) or per datagram
 * (sendmsg): a meshed app's DNS query is captured. A socket connected
 * elsewhere forgets the resolver it had, so getpeername() stays the kernel's.
 */
static __always_inline int mw_sock4_udp(struct bpf_sock_addr *ctx, struct mw_dest4 *dst,
					int connecting)
{
	const struct mw_pod *pod;
	struct mw_orig4 *orig;
	__u64 netns_cookie;

	if (ctx->protocol != MW_IPPROTO_UDP)
		return MW_ALLOW;
	/* The port first: other datagrams cost one comparison. */
	if (dst->port == bpf_htons(MW_DNS_PORT)) {
		netns_cookie = bpf_get_netns_cookie(ctx);
		pod = mw_pod_lookup(netns_cookie);
		if (pod && !mw_is_sidecar(ctx->sk, netns_cookie) &&
		    mw_dns_captured(pod, dst->ip4, dst->port))
			return mw_sock4_capture_dns(ctx, netns_cookie, dst);
	}
	if (connecting) {
		orig = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL, 0);
		if (orig)
			orig->flags &= ~MW_ORIG_F_DNS;
	}
	return MW_ALLOW;
}

/*
 * Outbound: an application in a meshed pod dials a remote service. Remember
 * where it wanted to go on the socket and send it to the sidecar instead.
 */
static __always_inline int mw_sock4_redirect_outbound(struct bpf_sock_addr *ctx,
						      const struct mw_pod *pod,
						      __u64 netns_cookie,
						      struct mw_dest4 *dst)
{
	__u32 dst_ip4 = dst->ip4;
	__u16 dst_port = dst->port;

	if (mw_is_loopback4(dst_ip4) ||
	    mw_port_excluded(netns_cookie, bpf_ntohs(dst_port), MW_DIR_OUT) ||
	    mw_cidr4_excluded(netns_cookie, dst_ip4) ||
	    !mw_out_included(pod, netns_cookie, bpf_ntohs(dst_port), dst_ip4)) {
		mw_count(MW_STAT_CONNECT_EXCLUDED);
		mw_trace("connect excluded %pI4:%d", &dst_ip4, bpf_ntohs(dst_port));
		mw_emit(dst->hook, MW_DEC_CONNECT_EXCLUDED, netns_cookie, 0, 0,
			dst_ip4, bpf_ntohs(dst_port), 0, 0, MW_EV_SOCK(ctx->sk));
		return MW_ALLOW;
	}
	if (mw_sock4_to_sidecar(ctx, dst, mw_cfg.outbound_port, MW_ORIG_F_CONNECT)) {
		mw_count(MW_STAT_CONNECT_ERROR);
		mw_trace("connect refused %pI4:%d", &dst_ip4, bpf_ntohs(dst_port));
		mw_emit(dst->hook, MW_DEC_CONNECT_REFUSED, netns_cookie, 0, 0,
			dst_ip4, bpf_ntohs(dst_port), 0, 0, MW_EV_SOCK(ctx->sk));
		return MW_DENY;
	}
	/* Only here: connect4/6 may call bpf_bind, sendmsg4 (DNS) may not. */
	mw_sock4_spread_source(ctx);
	mw_count(MW_STAT_CONNECT_REDIRECTED);
	mw_trace("connect %pI4:%d -> sidecar :%d", &dst_ip4, bpf_ntohs(dst_port),
		 mw_cfg.outbound_port);
	mw_emit(dst->hook, MW_DEC_CONNECT_REDIRECTED, netns_cookie, 0, 0,
		dst_ip4, bpf_ntohs(dst_port), bpf_htonl(MW_LOOPBACK_ADDR4),
		mw_cfg.outbound_port, MW_EV_SOCK(ctx->sk));
	return MW_ALLOW;
}

/* A TCP connect() to an IPv4 destination: where it goes (*dst rewritten). */
static __always_inline int mw_sock4_steer(struct bpf_sock_addr *ctx,
					  struct mw_dest4 *dst)
{
	const struct mw_pod *pod;
	__u64 netns_cookie;

	if (ctx->type != MW_SOCK_STREAM)
		return mw_sock4_udp(ctx, dst, 1);
	netns_cookie = bpf_get_netns_cookie(ctx);
	pod = mw_pod_lookup(netns_cookie);
	if (!pod)
		return MW_ALLOW;

	/*
	 * Straight to a capture port of a sidecar on this node (its loopback,
	 * its pod's or another meshed pod's address), by the app or by the
	 * sidecar itself: refused (EPERM), meshwire steers nothing there.
	 */
	if (mw_is_capture_port(bpf_ntohs(dst->port)) &&
	    (mw_is_loopback4(dst->ip4) || bpf_map_lookup_elem(&mw_pod_ips, &dst->ip4))) {
		mw_count(MW_STAT_LOOP_REFUSED);
		mw_trace("connect straight to sidecar port %pI4:%d refused", &dst->ip4,
			 bpf_ntohs(dst->port));
		mw_emit(dst->hook, MW_DEC_LOOP_REFUSED, netns_cookie, 0, 0, dst->ip4,
			bpf_ntohs(dst->port), 0, 0, MW_EV_SOCK(ctx->sk));
		return MW_DENY;
	}
	if (mw_is_sidecar(ctx->sk, netns_cookie)) {
		mw_count(MW_STAT_CONNECT_SIDECAR);
		return mw_sock4_redirect_inbound(ctx, netns_cookie, dst);
	}
	/* DNS over TCP: to the DNS proxy, whatever the outbound lists say. */
	if (mw_dns_captured(pod, dst->ip4, dst->port))
		return mw_sock4_capture_dns(ctx, netns_cookie, dst);
	return mw_sock4_redirect_outbound(ctx, pod, netns_cookie, dst);
}

SEC("cgroup/connect4")
int mw_sock4_connect(struct bpf_sock_addr *ctx)
{
	struct mw_dest4 dst = {
		.ip4 = ctx->user_ip4,
		.port = (__u16)ctx->user_port,
		.hook = MW_HOOK_CONNECT4,
	};
	int verdict = mw_sock4_steer(ctx, &dst);

	if (dst.rewritten) {
		ctx->user_ip4 = dst.ip4;
		ctx->user_port = dst.port;
	}
	return verdict;
}

/* Note the dialled IPv6 destination on a socket (mw_orig6_sk); -1: no storage. */
static __always_inline int mw_sock6_note(void *sk, const __u32 *ip6, __u16 port, __u16 flags)
{
	struct mw_orig6 *orig;

	orig = bpf_sk_storage_get(&mw_orig6_sk, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return -1;
	orig->ip6[0] = ip6[0];
	orig->ip6[1] = ip6[1];
	orig->ip6[2] = ip6[2];
	orig->ip6[3] = ip6[3];
	orig->port = port;
	orig->flags = flags;
	return 0;
}

/*
 * mw_sock4_to_sidecar for a native IPv6 destination: note ip6:port (network
 * order) on the socket (and its MPTCP socket), unbind it from a device, and
 * send it to [::1]:to_port. -1 when that cannot be done: the caller refuses.
 */
static __always_inline int mw_sock6_to_sidecar(struct bpf_sock_addr *ctx, const __u32 *ip6,
					       __u16 port, __u16 to_port, __u16 flags)
{
	struct mptcp_sock *msk;

	if (mw_sock6_note(ctx->sk, ip6, port, flags) ||
	    (ctx->sk->bound_dev_if && mw_sock4_unbind_device(ctx)))
		return -1;
	msk = bpf_skc_to_mptcp_sock(ctx->sk);
	if (msk)
		mw_sock6_note(msk, ip6, port, flags);
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = 0;
	ctx->user_ip6[3] = bpf_htonl(1);
	ctx->user_port = bpf_htons(to_port);
	mw_ctx_stores_done();
	return 0;
}

/*
 * mw_sock4_capture_dns for a native IPv6 resolver: the query goes to the
 * DNS proxy at [::1]:<dns_port>, the resolver noted in mw_orig6_sk (with
 * MW_ORIG_F_CONNECT for TCP: the proxy reads IP6T_SO_ORIGINAL_DST).
 */
static __always_inline int mw_sock6_capture_dns(struct bpf_sock_addr *ctx, __u64 netns_cookie,
						const __u32 *ip6, __u16 port, __u8 hook)
{
	__u16 flags = MW_ORIG_F_DNS;

	if (ctx->type == MW_SOCK_STREAM)
		flags |= MW_ORIG_F_CONNECT;
	if (mw_sock6_to_sidecar(ctx, ip6, port, mw_cfg.dns_port, flags)) {
		mw_count(MW_STAT_DNS_ERROR);
		mw_trace("dns6 refused");
		mw_emit6(hook, MW_DEC_DNS_REFUSED, netns_cookie, NULL, 0, ip6, MW_DNS_PORT, NULL, 0,
			 MW_EV_SOCK(ctx->sk));
		return MW_DENY;
	}
	mw_count(MW_STAT_DNS_REDIRECTED);
	mw_trace("dns6 -> proxy [::1]:%d", mw_cfg.dns_port);
	mw_emit6(hook, MW_DEC_DNS_REDIRECTED, netns_cookie, NULL, 0, ip6, MW_DNS_PORT, MW_EV_LO6,
		 mw_cfg.dns_port, MW_EV_SOCK(ctx->sk));
	return MW_ALLOW;
}

/*
 * mw_sock4_udp for a native IPv6 destination (ip6, port in network order):
 * a meshed app's query to port 53 is captured; a socket connected elsewhere
 * forgets the resolver it had.
 */
static __always_inline int mw_sock6_udp(struct bpf_sock_addr *ctx, const __u32 *ip6,
					__u16 port, int connecting, __u8 hook)
{
	const struct mw_pod *pod;
	struct mw_orig6 *orig;
	__u64 netns_cookie;

	if (ctx->protocol != MW_IPPROTO_UDP)
		return MW_ALLOW;
	if (port == bpf_htons(MW_DNS_PORT)) {
		netns_cookie = bpf_get_netns_cookie(ctx);
		pod = mw_pod_lookup(netns_cookie);
		if (pod && !mw_is_sidecar(ctx->sk, netns_cookie) &&
		    mw_dns_captured_at(pod, ip6, 1, port))
			return mw_sock6_capture_dns(ctx, netns_cookie, ip6, port, hook);
	}
	if (connecting) {
		orig = bpf_sk_storage_get(&mw_orig6_sk, ctx->sk, NULL, 0);
		if (orig)
			orig->flags &= ~MW_ORIG_F_DNS;
	}
	return MW_ALLOW;
}

/*
 * mw_sock4_redirect_inbound for a native IPv6 destination (interception.ipv6
 * = "intercept"): the sidecar dialling another meshed pod's IPv6 address
 * goes to that pod's inbound port, the address kept. Its own pod (its IPv6
 * address or ::1): untouched, as mw_sock4_redirect_inbound leaves it.
 */
static __always_inline int mw_sock6_redirect_inbound(struct bpf_sock_addr *ctx,
						     __u64 netns_cookie, const __u32 *ip6,
						     __u16 port_n)
{
	__u16 port = bpf_ntohs(port_n);
	enum mw_inbound in = mw_inbound_of(netns_cookie, ip6, 1, port);
	int noted = 0, verdict;

	if (in == MW_INBOUND_NONE || in == MW_INBOUND_OWN)
		return MW_ALLOW;
	if (in == MW_INBOUND_STEER)
		noted = mw_sock6_note(ctx->sk, ip6, port_n, MW_ORIG_F_CONNECT);
	verdict = mw_sock_inbound_verdict(ctx->sk, in, noted, MW_HOOK_CONNECT6, netns_cookie, ip6, 1,
					  port);
	if (in == MW_INBOUND_STEER && !noted) {
		ctx->user_port = bpf_htons(mw_cfg.inbound_port);
		mw_trace("connect6 inbound port %d -> sidecar :%d", port, mw_cfg.inbound_port);
	}
	return verdict;
}

/*
 * interception.ipv6 = "intercept": an app's native IPv6 connect() goes to
 * [::1]:<outbound_port>, the sidecar's IPv6 listener, with its destination on
 * the socket; mw_sock4_redirect_outbound's rules (excluded ports and CIDRs,
 * include lists, fail closed, MPTCP, bound device).
 */
static __always_inline int mw_sock6_redirect_outbound(struct bpf_sock_addr *ctx,
						      const struct mw_pod *pod,
						      __u64 netns_cookie, const __u32 *ip6,
						      __u16 port)
{
	if (mw_cidr6_excluded(netns_cookie, ip6) ||
	    !mw_out_included6(pod, netns_cookie, bpf_ntohs(port), ip6)) {
		mw_count(MW_STAT_CONNECT_EXCLUDED);
		mw_emit6(MW_HOOK_CONNECT6, MW_DEC_CONNECT_EXCLUDED, netns_cookie, NULL, 0, ip6,
			 bpf_ntohs(port), NULL, 0, MW_EV_SOCK(ctx->sk));
		return MW_ALLOW;
	}
	if (mw_sock6_to_sidecar(ctx, ip6, port, mw_cfg.outbound_port, MW_ORIG_F_CONNECT)) {
		mw_count(MW_STAT_CONNECT_ERROR);
		mw_emit6(MW_HOOK_CONNECT6, MW_DEC_CONNECT_REFUSED, netns_cookie, NULL, 0, ip6,
			 bpf_ntohs(port), NULL, 0, MW_EV_SOCK(ctx->sk));
		return MW_DENY;
	}
	mw_count(MW_STAT_CONNECT_REDIRECTED);
	mw_trace("connect6 port %d -> sidecar [::1]:%d", bpf_ntohs(port), mw_cfg.outbound_port);
	mw_emit6(MW_HOOK_CONNECT6, MW_DEC_CONNECT_REDIRECTED, netns_cookie, NULL, 0, ip6,
		 bpf_ntohs(port), MW_EV_LO6, mw_cfg.outbound_port, MW_EV_SOCK(ctx->sk));
	return MW_ALLOW;
}

/*
 * A native IPv6 destination of a meshed pod's connect(). UDP: DNS capture
 * only (mw_sock6_udp). TCP: an app's DNS to a captured resolver goes to the
 * DNS proxy whatever interception.ipv6 says; otherwise "pass": direct.
 * Loopback (::1) and excluded outbound ports always go direct, and the
 * sidecar's own connections do but with "intercept". "refuse": everything
 * else fails (EPERM) rather than bypass the sidecar. "intercept": an app's
 * are steered (mw_sock6_redirect_outbound), the sidecar's to another meshed
 * pod go to its inbound port (mw_sock6_redirect_inbound), and a connection
 * straight to a capture port on ::1 or a meshed pod's address is refused
 * like connect4's.
 */
static __always_inline int mw_sock6_native(struct bpf_sock_addr *ctx)
{
	__u32 ip6[4];
	__u16 port_n = (__u16)ctx->user_port;
	__u16 port = bpf_ntohs(port_n);
	const struct mw_pod *pod;
	__u64 netns_cookie;

	mw_sock6_addr(ctx, ip6);
	if (ctx->type != MW_SOCK_STREAM)
		return mw_sock6_udp(ctx, ip6, port_n, 1, MW_HOOK_CONNECT6);
	netns_cookie = bpf_get_netns_cookie(ctx);
	pod = mw_pod_lookup(netns_cookie);
	if (!pod)
		return MW_ALLOW;
	if (mw_cfg.ipv6 == MW_IPV6_INTERCEPT && mw_is_capture_port(port) &&
	    (mw_is_loopback6(ip6) || mw_pod_ip_cookie(ip6, 1))) {
		mw_count(MW_STAT_LOOP_REFUSED);
		mw_emit6(MW_HOOK_CONNECT6, MW_DEC_LOOP_REFUSED, netns_cookie, NULL, 0, ip6, port,
			 NULL, 0, MW_EV_SOCK(ctx->sk));
		return MW_DENY;
	}
	if (mw_is_sidecar(ctx->sk, netns_cookie)) {
		if (mw_cfg.ipv6 != MW_IPV6_INTERCEPT)
			return MW_ALLOW;
		mw_count(MW_STAT_CONNECT_SIDECAR);
		return mw_sock6_redirect_inbound(ctx, netns_cookie, ip6, port_n);
	}
	if (mw_dns_captured_at(pod, ip6, 1, port_n))
		return mw_sock6_capture_dns(ctx, netns_cookie, ip6, port_n, MW_HOOK_CONNECT6);
	if (mw_cfg.ipv6 == MW_IPV6_PASS)
		return MW_ALLOW;
	if (mw_is_loopback6(ip6) || mw_port_excluded(netns_cookie, port, MW_DIR_OUT)) {
		if (mw_cfg.ipv6 == MW_IPV6_INTERCEPT) {
			mw_count(MW_STAT_CONNECT_EXCLUDED);
			mw_emit6(MW_HOOK_CONNECT6, MW_DEC_CONNECT_EXCLUDED, netns_cookie, NULL, 0,
				 ip6, port, NULL, 0, MW_EV_SOCK(ctx->sk));
		}
		return MW_ALLOW;
	}
	if (mw_cfg.ipv6 == MW_IPV6_INTERCEPT)
		return mw_sock6_redirect_outbound(ctx, pod, netns_cookie, ip6, port_n);
	mw_count(MW_STAT_CONNECT6_REFUSED);
	mw_trace("connect6 native IPv6 refused, port %d", port);
	mw_emit6(MW_HOOK_CONNECT6, MW_DEC_CONNECT6_REFUSED, netns_cookie, NULL, 0, ip6, port,
		 NULL, 0, MW_EV_SOCK(ctx->sk));
	return MW_DENY;
}

/*
 * An AF_INET6 socket: a v4-mapped destination is an IPv4 connection and is
 * steered like connect4 (to ::ffff:127.0.0.1 and the sidecar's port), so a
 * dual-stack app cannot bypass the mesh; a native one, see mw_sock6_native.
 */
SEC("cgroup/connect6")
int mw_sock6_connect(struct bpf_sock_addr *ctx)
{
	struct mw_dest4 dst = {
		.port = (__u16)ctx->user_port,
		.hook = MW_HOOK_CONNECT6,
	};
	int verdict;

	if (!mw_sock6_v4mapped(ctx))
		return mw_sock6_native(ctx);
	dst.ip4 = ctx->user_ip6[3];
	verdict = mw_sock4_steer(ctx, &dst);
	if (dst.rewritten) {
		ctx->user_ip6[3] = dst.ip4;
		ctx->user_port = dst.port;
	}
	return verdict;
}

/*
 * The address a redirected socket dialled, if it was redirected: a TCP
 * connection steered to the sidecar, or a UDP socket connected to the DNS
 * proxy in place of its resolver.
 */
static __always_inline __u16 mw_sock_dialled_flag(struct bpf_sock_addr *ctx)
{
	if (ctx->type == MW_SOCK_STREAM)
		return MW_ORIG_F_CONNECT;
	if (ctx->protocol == MW_IPPROTO_UDP)
		return MW_ORIG_F_DNS;
	return 0;
}

static __always_inline const struct mw_orig4 *mw_sock_dialled(struct bpf_sock_addr *ctx)
{
	__u16 flag = mw_sock_dialled_flag(ctx);
	struct mw_orig4 *orig;

	if (!flag)
		return NULL;
	orig = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL, 0);
	if (!orig || !(orig->flags & flag))
		return NULL;
	return orig;
}

/* The same for a native IPv6 destination (mw_orig6_sk). */
static __always_inline const struct mw_orig6 *mw_sock6_dialled(struct bpf_sock_addr *ctx)
{
	__u16 flag = mw_sock_dialled_flag(ctx);
	struct mw_orig6 *orig;

	if (!flag)
		return NULL;
	orig = bpf_sk_storage_get(&mw_orig6_sk, ctx->sk, NULL, 0);
	if (!orig || !(orig->flags & flag))
		return NULL;
	return orig;
}

/* The peer address getpeername/recvmsg report becomes *orig, if any. */
static __always_inline int mw_sock4_report(struct bpf_sock_addr *ctx,
					   const struct mw_orig4 *orig)
{
	if (orig) {
		ctx->user_ip4 = orig->ip4;
		ctx->user_port = orig->port;
		mw_ctx_stores_done();
	}
	return MW_ALLOW;
}

/* The same in an AF_INET6 socket's v4-mapped address (checked by the caller). */
static __always_inline int mw_sock6_report(struct bpf_sock_addr *ctx,
					   const struct mw_orig4 *orig)
{
	if (orig) {
		ctx->user_ip6[3] = orig->ip4;
		ctx->user_port = orig->port;
		mw_ctx_stores_done();
	}
	return MW_ALLOW;
}

/* The same with a native IPv6 address (mw_orig6_sk). */
static __always_inline int mw_sock6_report6(struct bpf_sock_addr *ctx,
					    const struct mw_orig6 *orig)
{
	if (orig) {
		ctx->user_ip6[0] = orig->ip6[0];
		ctx->user_ip6[1] = orig->ip6[1];
		ctx->user_ip6[2] = orig->ip6[2];
		ctx->user_ip6[3] = orig->ip6[3];
		ctx->user_port = orig->port;
		mw_ctx_stores_done();
	}
	return MW_ALLOW;
}

/*
 * getpeername() on a redirected socket answers the address the application
 * dialled, not the sidecar's: the redirection stays invisible to the app.
 */
SEC("cgroup/getpeername4")
int mw_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return mw_sock4_report(ctx, mw_sock_dialled(ctx));
}

/*
 * The same for an AF_INET6 socket redirected by connect6: to a v4-mapped
 * address (mw_orig_sk) or a native IPv6 one (mw_orig6_sk), TCP or a UDP
 * socket connected to the DNS proxy.
 */
SEC("cgroup/getpeername6")
int mw_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	if (mw_sock6_v4mapped(ctx))
		return mw_sock6_report(ctx, mw_sock_dialled(ctx));
	return mw_sock6_report6(ctx, mw_sock6_dialled(ctx));
}

/*
 * sendmsg() with a destination on a UDP socket (an unconnected resolver
 * socket): a DNS query is sent to the DNS proxy instead, the resolver noted
 * for recvmsg4. The kernel runs this hook for AF_INET6 sockets sending to a
 * v4-mapped address too (udpv6_sendmsg hands those to udp_sendmsg).
 */
SEC("cgroup/sendmsg4")
int mw_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	struct mw_dest4 dst = {
		.ip4 = ctx->user_ip4,
		.port = (__u16)ctx->user_port,
		.hook = MW_HOOK_SENDMSG4,
	};
	int verdict = mw_sock4_udp(ctx, &dst, 0);

	if (dst.rewritten) {
		ctx->user_ip4 = dst.ip4;
		ctx->user_port = dst.port;
	}
	return verdict;
}

/*
 * A datagram from the DNS proxy (127.0.0.1:<dns_port>, src_ip4 and the
 * port in ctx in network order) to a socket whose queries went there: the
 * resolver they were sent to, which the answer is reported from. NULL for
 * anything else.
 */
static __always_inline const struct mw_orig4 *mw_sock_dns_answer(struct bpf_sock_addr *ctx,
								 __u32 src_ip4, __u8 hook)
{
	const struct mw_orig4 *orig;

	if (ctx->protocol != MW_IPPROTO_UDP ||
	    (__u16)ctx->user_port != bpf_htons(mw_cfg.dns_port) ||
	    src_ip4 != bpf_htonl(MW_LOOPBACK_ADDR4))
		return NULL;
	orig = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL, 0);
	if (!orig || !(orig->flags & MW_ORIG_F_DNS))
		return NULL;
	mw_count(MW_STAT_DNS_RESTORED);
	mw_emit(hook, MW_DEC_DNS_RESTORED, bpf_get_netns_cookie(ctx),
		src_ip4, mw_cfg.dns_port, orig->ip4, bpf_ntohs(orig->port), 0, 0, MW_EV_TASK);
	return orig;
}

/*
 * mw_sock_dns_answer for a native IPv6 datagram: from the DNS proxy at
 * [::1]:<dns_port> (src, four network-order words) to a socket whose
 * queries went there; the resolver in mw_orig6_sk, or NULL.
 */
static __always_inline const struct mw_orig6 *mw_sock6_dns_answer(struct bpf_sock_addr *ctx,
								  const __u32 *src)
{
	const struct mw_orig6 *orig;

	if (ctx->protocol != MW_IPPROTO_UDP ||
	    (__u16)ctx->user_port != bpf_htons(mw_cfg.dns_port) || !mw_is_loopback6(src))
		return NULL;
	orig = bpf_sk_storage_get(&mw_orig6_sk, ctx->sk, NULL, 0);
	if (!orig || !(orig->flags & MW_ORIG_F_DNS))
		return NULL;
	mw_count(MW_STAT_DNS_RESTORED);
	mw_emit6(MW_HOOK_RECVMSG6, MW_DEC_DNS_RESTORED, bpf_get_netns_cookie(ctx), src,
		 mw_cfg.dns_port, orig->ip6, bpf_ntohs(orig->port), NULL, 0, MW_EV_TASK);
	return orig;
}

/*
 * recvfrom()/recvmsg() of the DNS proxy's answer reports the resolver's
 * address and port: glibc, dig, Go and musl drop answers from elsewhere.
 */
SEC("cgroup/recvmsg4")
int mw_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return mw_sock4_report(ctx, mw_sock_dns_answer(ctx, ctx->user_ip4, MW_HOOK_RECVMSG4));
}

/*
 * The same on an AF_INET6 socket whose query was captured: to a v4-mapped
 * resolver (the proxy's answer from ::ffff:127.0.0.1) or a native IPv6 one
 * (from [::1]).
 */
SEC("cgroup/recvmsg6")
int mw_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	__u32 src[4];

	if (mw_sock6_v4mapped(ctx))
		return mw_sock6_report(ctx, mw_sock_dns_answer(ctx, ctx->user_ip6[3],
							       MW_HOOK_RECVMSG6));
	mw_sock6_addr(ctx, src);
	return mw_sock6_report6(ctx, mw_sock6_dns_answer(ctx, src));
}

/*
 * sendmsg() with a destination on an AF_INET6 UDP socket: a query to a
 * native IPv6 resolver goes to the DNS proxy at [::1] (mw_sock6_udp); one
 * to a v4-mapped resolver (a dual-stack socket) like sendmsg4's, to
 * ::ffff:127.0.0.1. If the kernel then runs sendmsg4 on it too, the
 * datagram is already to the DNS proxy's port: untouched there.
 */
SEC("cgroup/sendmsg6")
int mw_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	struct mw_dest4 dst = {
		.port = (__u16)ctx->user_port,
		.hook = MW_HOOK_SENDMSG6,
	};
	__u32 ip6[4];
	int verdict;

	if (!mw_sock6_v4mapped(ctx)) {
		mw_sock6_addr(ctx, ip6);
		return mw_sock6_udp(ctx, ip6, dst.port, 0, MW_HOOK_SENDMSG6);
	}
	dst.ip4 = ctx->user_ip6[3];
	verdict = mw_sock4_udp(ctx, &dst, 0);
	if (dst.rewritten) {
		ctx->user_ip6[3] = dst.ip4;
		ctx->user_port = dst.port;
		mw_ctx_stores_done();
	}
	return verdict;
}
