// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sockopt hooks: answer the sidecar's getsockopt(SO_ORIGINAL_DST). */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_maps.h"
#include "lib/meshwire_trace.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/*
 * Fill a sockaddr_in as netfilter's getorigdst() does. Connections meshwire
 * did not redirect keep the kernel's own answer (ENOENT without conntrack,
 * netfilter's answer with it).
 */
static __always_inline int mw_sockopt_original_dst(struct bpf_sockopt *ctx)
{
	struct sockaddr_in *sin = ctx->optval;
	struct bpf_sock *sk = ctx->sk;
	struct mw_orig4 *orig;

	if (!sk)
		return MW_ALLOW;
	orig = bpf_sk_storage_get(&mw_orig_sk, sk, NULL, 0);
	if (!orig || !(orig->flags & MW_ORIG_F_ACCEPTED)) {
		mw_count(MW_STAT_SOCKOPT_UNKNOWN);
		return MW_ALLOW;
	}
	/* A short buffer keeps the kernel's error, as netfilter's EINVAL. */
	if ((void *)(sin + 1) > ctx->optval_end)
		return MW_ALLOW;

	sin->sin_family = MW_AF_INET;
	sin->sin_port = orig->port;
	sin->sin_addr.s_addr = orig->ip4;
	__builtin_memset(sin->__pad, 0, sizeof(sin->__pad));
	ctx->optlen = sizeof(*sin);
	/* Keep clang from merging the two 4-byte ctx stores: the verifier
	 * only accepts them one at a time. */
	asm volatile("" ::: "memory");
	ctx->retval = 0;
	mw_count(MW_STAT_SOCKOPT_ANSWERED);
	mw_trace("getsockopt original dst %pI4:%d", &orig->ip4, bpf_ntohs(orig->port));
	/* From the accepted socket: its peer is the client, itself the sidecar. */
	mw_emit(MW_HOOK_GETSOCKOPT, MW_DEC_SOCKOPT_ANSWERED, bpf_get_netns_cookie(ctx),
		sk->dst_ip4, bpf_ntohs((__u16)sk->dst_port), orig->ip4, bpf_ntohs(orig->port),
		sk->src_ip4, (__u16)sk->src_port, MW_EV_TASK);
	return MW_ALLOW;
}

SEC("cgroup/getsockopt")
int mw_sockopt_get(struct bpf_sockopt *ctx)
{
	if (ctx->level == MW_SOL_IP && ctx->optname == MW_SO_ORIGINAL_DST)
		return mw_sockopt_original_dst(ctx);

	/*
	 * Not ours. Past a page the kernel gave us only a prefix of the
	 * buffer; optlen 0 tells it to return the user's buffer untouched.
	 */
	if (ctx->optlen > MW_PAGE_SIZE)
		ctx->optlen = 0;
	return MW_ALLOW;
}
