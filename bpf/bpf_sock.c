// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sock_addr hooks: steer a meshed pod's connect() into its sidecar. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_policy.h"
#include "lib/meshwire_trace.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* Remember where the socket was going, for the sidecar that will accept it. */
static __always_inline int mw_sock4_remember(struct bpf_sock_addr *ctx,
					     __u32 dst_ip4, __u16 dst_port)
{
	struct mw_orig4 *orig;

	orig = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL,
				  BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return -1;
	orig->ip4 = dst_ip4;
	orig->port = dst_port;
	orig->flags = MW_ORIG_F_CONNECT;
	return 0;
}

/*
 * The sidecar hands an inbound connection to its own app (its pod's address
 * or loopback). Untouched; with acceleration on, the socket is marked so that
 * sockops accelerates this hop too (it cannot tell the sidecar's sockets from
 * the app's). No storage only means no acceleration.
 */
static __always_inline int mw_sock4_deliver(struct bpf_sock_addr *ctx)
{
	__u16 dst_port = bpf_ntohs((__u16)ctx->user_port);
	struct mw_orig4 *mark;

	if (!mw_cfg.accel || dst_port == mw_cfg.outbound_port ||
	    dst_port == mw_cfg.inbound_port)
		return MW_ALLOW;
	mark = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL,
				  BPF_SK_STORAGE_GET_F_CREATE);
	if (mark) {
		mark->ip4 = ctx->user_ip4;
		mark->port = (__u16)ctx->user_port;
		mark->flags = MW_ORIG_F_DELIVER;
	}
	return MW_ALLOW;
}

/*
 * Inbound, same node: a sidecar dials an app port of another meshed pod on
 * this node; send it to that pod's sidecar inbound port instead. Dialling its
 * own pod is the sidecar handing an inbound connection to its app.
 */
static __always_inline int mw_sock4_redirect_inbound(struct bpf_sock_addr *ctx,
						     __u64 netns_cookie)
{
	__u32 dst_ip4 = ctx->user_ip4;
	__u16 dst_port = (__u16)ctx->user_port;
	__u64 *peer_cookie;

	if (mw_is_loopback4(dst_ip4))
		return mw_sock4_deliver(ctx);
	peer_cookie = bpf_map_lookup_elem(&mw_pod_ips, &dst_ip4);
	if (!peer_cookie)
		return MW_ALLOW;
	if (*peer_cookie == netns_cookie)
		return mw_sock4_deliver(ctx);
	if (mw_in_port_excluded(dst_ip4, bpf_ntohs(dst_port))) {
		mw_count(MW_STAT_CONNECT_EXCLUDED);
		mw_emit(MW_HOOK_CONNECT4, MW_DEC_CONNECT_EXCLUDED, netns_cookie, 0, 0,
			dst_ip4, bpf_ntohs(dst_port), 0, 0, MW_EV_TASK);
		return MW_ALLOW;
	}
	if (mw_sock4_remember(ctx, dst_ip4, dst_port)) {
		mw_count(MW_STAT_CONNECT_ERROR);
		mw_emit(MW_HOOK_CONNECT4, MW_DEC_CONNECT_REFUSED, netns_cookie, 0, 0,
			dst_ip4, bpf_ntohs(dst_port), 0, 0, MW_EV_TASK);
		return MW_DENY;
	}
	ctx->user_port = bpf_htons(mw_cfg.inbound_port);
	mw_count(MW_STAT_CONNECT_INBOUND);
	mw_trace("connect4 inbound %pI4:%d -> sidecar :%d", &dst_ip4,
		 bpf_ntohs(dst_port), mw_cfg.inbound_port);
	mw_emit(MW_HOOK_CONNECT4, MW_DEC_CONNECT_INBOUND, netns_cookie, 0, 0,
		dst_ip4, bpf_ntohs(dst_port), dst_ip4, mw_cfg.inbound_port, MW_EV_TASK);
	return MW_ALLOW;
}

/*
 * Outbound: an application in a meshed pod dials a remote service. Remember
 * where it wanted to go on the socket and send it to the sidecar instead.
 */
static __always_inline int mw_sock4_redirect_outbound(struct bpf_sock_addr *ctx,
						      __u64 netns_cookie)
{
	__u32 dst_ip4 = ctx->user_ip4;
	__u16 dst_port = (__u16)ctx->user_port;

	if (mw_is_loopback4(dst_ip4) ||
	    mw_port_excluded(netns_cookie, bpf_ntohs(dst_port), MW_DIR_OUT) ||
	    mw_cidr4_excluded(netns_cookie, dst_ip4)) {
		mw_count(MW_STAT_CONNECT_EXCLUDED);
		mw_trace("connect4 excluded %pI4:%d", &dst_ip4, bpf_ntohs(dst_port));
		mw_emit(MW_HOOK_CONNECT4, MW_DEC_CONNECT_EXCLUDED, netns_cookie, 0, 0,
			dst_ip4, bpf_ntohs(dst_port), 0, 0, MW_EV_TASK);
		return MW_ALLOW;
	}
	if (mw_sock4_remember(ctx, dst_ip4, dst_port)) {
		mw_count(MW_STAT_CONNECT_ERROR);
		mw_trace("connect4 no storage, refused %pI4:%d", &dst_ip4,
			 bpf_ntohs(dst_port));
		mw_emit(MW_HOOK_CONNECT4, MW_DEC_CONNECT_REFUSED, netns_cookie, 0, 0,
			dst_ip4, bpf_ntohs(dst_port), 0, 0, MW_EV_TASK);
		return MW_DENY;
	}
	ctx->user_ip4 = bpf_htonl(MW_LOOPBACK_ADDR4);
	ctx->user_port = bpf_htons(mw_cfg.outbound_port);
	mw_count(MW_STAT_CONNECT_REDIRECTED);
	mw_trace("connect4 %pI4:%d -> sidecar :%d", &dst_ip4, bpf_ntohs(dst_port),
		 mw_cfg.outbound_port);
	mw_emit(MW_HOOK_CONNECT4, MW_DEC_CONNECT_REDIRECTED, netns_cookie, 0, 0,
		dst_ip4, bpf_ntohs(dst_port), bpf_htonl(MW_LOOPBACK_ADDR4),
		mw_cfg.outbound_port, MW_EV_TASK);
	return MW_ALLOW;
}

/*
 * Returns MW_DENY only when the original destination could not be stored:
 * redirecting without it would leave the sidecar blind, and letting the
 * connection go direct would bypass the mesh (fail closed).
 */
/*
 * getpeername() on a redirected socket answers the address the application
 * dialled, not the sidecar's: the redirection stays invisible to the app.
 */
SEC("cgroup/getpeername4")
int mw_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	struct mw_orig4 *orig;

	if (ctx->type != MW_SOCK_STREAM)
		return MW_ALLOW;
	orig = bpf_sk_storage_get(&mw_orig_sk, ctx->sk, NULL, 0);
	if (!orig || !(orig->flags & MW_ORIG_F_CONNECT))
		return MW_ALLOW;
	ctx->user_ip4 = orig->ip4;
	ctx->user_port = orig->port;
	return MW_ALLOW;
}

SEC("cgroup/connect4")
int mw_sock4_connect(struct bpf_sock_addr *ctx)
{
	__u64 netns_cookie;

	if (ctx->type != MW_SOCK_STREAM)
		return MW_ALLOW;
	netns_cookie = bpf_get_netns_cookie(ctx);
	if (!mw_pod_lookup(netns_cookie))
		return MW_ALLOW;

	if ((__u32)bpf_get_current_uid_gid() == mw_cfg.sidecar_uid) {
		mw_count(MW_STAT_CONNECT_SIDECAR);
		return mw_sock4_redirect_inbound(ctx, netns_cookie);
	}
	return mw_sock4_redirect_outbound(ctx, netns_cookie);
}
