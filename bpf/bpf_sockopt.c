// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sockopt hooks: answer the sidecar's getsockopt(SO_ORIGINAL_DST). */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/meshwire_config.h"
#include "lib/meshwire_maps.h"
#include "lib/meshwire_trace.h"

char _license[] SEC("license") = "Dual BSD/GPL";

/* netfilter's getorigdst() errors (asm-generic/errno-base.h, errno.h). */
#define MW_ENOENT	2
#define MW_EFAULT	14
#define MW_EINVAL	22
#define MW_ENOPROTOOPT	92
#define MW_IPPROTO_TCP	6
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

/*
 * ipv6_iface_scope_id(): the socket's bound device for an address that needs
 * a scope (link-local unicast, interface- or link-local multicast), else 0.
 */
static __always_inline __u32 mw_sockopt_scope_id(const __u32 *ip6, __u32 bound_dev_if)
{
	__u32 w0 = bpf_ntohl(ip6[0]);

	if ((w0 & 0xffc00000U) == 0xfe800000U ||
	    ((w0 >> 24) == 0xff && ((w0 >> 16) & 0xf) <= 2))
		return bound_dev_if;
	return 0;
}

/*
 * getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) as netfilter's ipv6_getorigdst()
 * answers it (net/netfilter/nf_conntrack_proto.c), in its order: a socket
 * that is not TCP keeps the kernel's answer (ENOPROTOOPT); a buffer shorter
 * than a sockaddr_in6 is EINVAL; a connection with nothing to answer ENOENT;
 * a NULL buffer EFAULT; else a sockaddr_in6 of the dialled address and port,
 * flowinfo the socket's flow label (read by sockops when the sidecar
 * accepted it: getsockopt programs cannot reach ipv6_pinfo), scope id its
 * bound device for a
 * link-local address, optlen left as the caller gave it. Where conntrack
 * answered (netfilter is in the namespace), a connection meshwire did not
 * redirect keeps that answer. A caller's buffer longer than a page is
 * answered with optlen sizeof(struct sockaddr_in6) (the kernel lends the
 * program one page only); the bytes after the sockaddr_in6 come back zero.
 */
/* An IPv6 socket's peer and own addresses, read as whole 32-bit words. */
static __always_inline void mw_sockopt_sk_ip6(struct bpf_sock *sk, __u32 *peer, __u32 *self)
{
	const volatile __u32 *dst = sk->dst_ip6, *src = sk->src_ip6;

	peer[0] = dst[0];
	peer[1] = dst[1];
	peer[2] = dst[2];
	peer[3] = dst[3];
	self[0] = src[0];
	self[1] = src[1];
	self[2] = src[2];
	self[3] = src[3];
}

static __always_inline int mw_sockopt_original_dst6(struct bpf_sockopt *ctx)
{
	struct sockaddr_in6 *sin6 = ctx->optval;
	struct bpf_sock *sk = ctx->sk;
	struct mw_orig6 *orig;

	if (!sk || sk->protocol != MW_IPPROTO_TCP)
		return MW_ALLOW;
	orig = bpf_sk_storage_get(&mw_orig6_sk, sk, NULL, 0);
	if (orig && !(orig->flags & MW_ORIG_F_ACCEPTED))
		orig = NULL;
	if (!orig) {
		mw_count(MW_STAT_SOCKOPT_UNKNOWN);
		if (ctx->retval != -MW_ENOPROTOOPT)
			return MW_ALLOW;
	}
	if (ctx->optlen < (int)sizeof(*sin6)) {
		ctx->retval = -MW_EINVAL;
		return MW_ALLOW;
	}
	/* Past a page, optlen 0 lets the error through (else the kernel's stays). */
	if (ctx->optlen > MW_PAGE_SIZE && (!orig || mw_sockopt_user_buffer_null()))
		ctx->optlen = 0;
	if (!orig) {
		ctx->retval = -MW_ENOENT;
		return MW_ALLOW;
	}
	if (mw_sockopt_user_buffer_null()) {
		ctx->retval = -MW_EFAULT;
		return MW_ALLOW;
	}
	if ((void *)(sin6 + 1) > ctx->optval_end)
		return MW_ALLOW;

	sin6->sin6_family = MW_AF_INET6;
	sin6->sin6_port = orig->port;
	sin6->sin6_flowinfo = orig->flowinfo;
	__builtin_memcpy(&sin6->sin6_addr, orig->ip6, sizeof(orig->ip6));
	sin6->sin6_scope_id = mw_sockopt_scope_id(orig->ip6, sk->bound_dev_if);
	if (ctx->optlen > MW_PAGE_SIZE)
		ctx->optlen = sizeof(*sin6);
	/* As in mw_sockopt_original_dst: one 4-byte ctx store at a time. */
	asm volatile("" ::: "memory");
	ctx->retval = 0;
	mw_count(MW_STAT_SOCKOPT_ANSWERED);
	mw_trace("getsockopt IPv6 original dst port %d", bpf_ntohs(orig->port));
	if (mw_cfg.trace) {
		/* The client (the socket's peer) and the sidecar, a word at a time. */
		__u32 client[4], self[4];

		mw_sockopt_sk_ip6(sk, client, self);
		mw_emit6(MW_HOOK_GETSOCKOPT, MW_DEC_SOCKOPT_ANSWERED, bpf_get_netns_cookie(ctx),
			 client, bpf_ntohs((__u16)sk->dst_port), orig->ip6, bpf_ntohs(orig->port),
			 self, (__u16)sk->src_port, MW_EV_TASK);
	}
	return MW_ALLOW;
}

SEC("cgroup/getsockopt")
int mw_sockopt_get(struct bpf_sockopt *ctx)
{
	if (ctx->level == MW_SOL_IP && ctx->optname == MW_SO_ORIGINAL_DST)
		return mw_sockopt_original_dst(ctx);
	if (ctx->level == MW_SOL_IPV6 && ctx->optname == MW_IP6T_SO_ORIGINAL_DST)
		return mw_sockopt_original_dst6(ctx);

	/*
	 * Not ours. Past a page the kernel gave us only a prefix of the
	 * buffer; optlen 0 tells it to return the user's buffer untouched.
	 */
	if (ctx->optlen > MW_PAGE_SIZE)
		ctx->optlen = 0;
	return MW_ALLOW;
}
