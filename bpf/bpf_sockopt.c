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

/* netfilter's getorigdst() errors (asm-generic/errno-base.h). */
#define MW_EFAULT	14
#define MW_EINVAL	22

#ifdef __TARGET_ARCH_x86
/* x86_64 struct pt_regs (asm/ptrace.h) and syscall number (asm/unistd_64.h). */
#define MW_PT_REGS_R10_OFF	56	/* the 4th syscall argument: optval */
#define MW_PT_REGS_ORIG_AX_OFF	120	/* the syscall number */
#define MW_NR_GETSOCKOPT	55
#endif

/*
 * Did the caller pass optval == NULL? The program sees the kernel's copy of
 * the buffer only, and the kernel skips copying our answer out to a NULL
 * one, which would turn netfilter's EFAULT into a silent success. The user
 * pointer is the getsockopt() syscall's 4th argument; a call that did not
 * come through that syscall (io_uring) or an architecture whose registers
 * are not described here is taken as not NULL.
 */
static __always_inline int mw_sockopt_user_buffer_null(void)
{
#ifdef __TARGET_ARCH_x86
	const char *regs = (const char *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 nr = 0, optval = 1;

	if (bpf_probe_read_kernel(&nr, sizeof(nr), regs + MW_PT_REGS_ORIG_AX_OFF) ||
	    nr != MW_NR_GETSOCKOPT)
		return 0;
	if (bpf_probe_read_kernel(&optval, sizeof(optval), regs + MW_PT_REGS_R10_OFF))
		return 0;
	return optval == 0;
#else
	return 0;
#endif
}

/*
 * Fill a sockaddr_in as netfilter's getorigdst() does, with its errors: a
 * buffer shorter than a sockaddr_in is EINVAL, a NULL one EFAULT.
 * Connections meshwire did not redirect keep the kernel's own answer (ENOENT
 * without conntrack, netfilter's answer with it).
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
	if (ctx->optlen < (int)sizeof(*sin) || (void *)(sin + 1) > ctx->optval_end) {
		ctx->retval = -MW_EINVAL;
		return MW_ALLOW;
	}
	if (mw_sockopt_user_buffer_null()) {
		ctx->retval = -MW_EFAULT;
		return MW_ALLOW;
	}

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
