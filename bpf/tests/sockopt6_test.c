// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) (bpf/bpf_sockopt.c), the real
 * source compiled for the host, on a table of calls: answered as netfilter's
 * ipv6_getorigdst() answers (a sockaddr_in6 with flowinfo and scope id,
 * optlen as the caller gave it; EINVAL for a short buffer before anything
 * else, ENOENT with nothing to answer), and the kernel's own answer kept
 * where conntrack gave one or the socket is not TCP. The NULL-buffer EFAULT
 * reads the syscall's registers (x86 BPF builds only): netns_e2e covers it.
 */
#define MW_CFG_CONST
#include "../bpf_sockopt.c"
#include "datapath.h"

#include <string.h>

#define ENOPROTOOPT	92	/* the kernel's answer without conntrack in the namespace */
#define ENOENT		2
#define FILL		0xa5	/* the buffer's bytes before the call */
#define SIN6		((int)sizeof(struct sockaddr_in6))
#define FLOWINFO	0x00012345U	/* the accepted socket's flow label, host order */

struct sockopt6_case {
	const char *what;
	int level;
	int optlen;		/* as the kernel passes it */
	int buf;		/* bytes between optval and optval_end */
	int kernel;		/* the kernel's retval before the hook (0: -ENOPROTOOPT) */
	int no_sk;
	int udp;
	__u32 bound_dev_if;
	__u16 mark6;		/* mw_orig6_sk flags (ORIG_IP6 or `orig`:ORIG_PORT) */
	__u16 mark4;		/* mw_orig_sk flags */
	const char *orig;	/* the dialled address (NULL: ORIG_IP6) */
	/* what the hook must leave */
	int answered;		/* a sockaddr_in6, retval 0 */
	__u32 want_scope;
	int want_optlen;
	int error;		/* when not answered: the errno (0: the kernel's stays) */
	__u32 stats;
};

static const struct sockopt6_case cases[] = {
	{ "the sidecar's IP6T_SO_ORIGINAL_DST is answered", MW_SOL_IPV6, SIN6, SIN6,
	  .mark6 = MW_ORIG_F_ACCEPTED, .answered = 1, .want_optlen = SIN6,
	  .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a larger buffer keeps the caller's optlen, as netfilter's", MW_SOL_IPV6, 128, 128,
	  .mark6 = MW_ORIG_F_ACCEPTED, .answered = 1, .want_optlen = 128,
	  .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a buffer past a page is answered with a sockaddr_in6's length", MW_SOL_IPV6,
	  70000, MW_PAGE_SIZE, .mark6 = MW_ORIG_F_ACCEPTED, .answered = 1, .want_optlen = SIN6,
	  .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a link-local destination gets the socket's bound device as scope id", MW_SOL_IPV6,
	  SIN6, SIN6, .bound_dev_if = 3, .mark6 = MW_ORIG_F_ACCEPTED, .orig = "fe80::7",
	  .answered = 1, .want_scope = 3, .want_optlen = SIN6,
	  .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a global destination has scope id 0 whatever the device", MW_SOL_IPV6, SIN6, SIN6,
	  .bound_dev_if = 3, .mark6 = MW_ORIG_F_ACCEPTED, .answered = 1, .want_optlen = SIN6,
	  .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a buffer too short is EINVAL", MW_SOL_IPV6, SIN6 - 1, SIN6 - 1,
	  .mark6 = MW_ORIG_F_ACCEPTED, .want_optlen = SIN6 - 1, .error = MW_EINVAL },
	{ "a buffer too short is EINVAL even with nothing to answer (netfilter checks it first)",
	  MW_SOL_IPV6, 16, 16, .want_optlen = 16, .error = MW_EINVAL,
	  .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "nothing to answer is ENOENT", MW_SOL_IPV6, SIN6, SIN6, .want_optlen = SIN6,
	  .error = ENOENT, .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "nothing to answer past a page: ENOENT, optlen 0 lets it through", MW_SOL_IPV6,
	  70000, MW_PAGE_SIZE, .want_optlen = 0, .error = ENOENT,
	  .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "the app's own redirected socket has nothing to answer", MW_SOL_IPV6, SIN6, SIN6,
	  .mark6 = MW_ORIG_F_CONNECT, .want_optlen = SIN6, .error = ENOENT,
	  .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "an IPv4 original destination is not an IPv6 one", MW_SOL_IPV6, SIN6, SIN6,
	  .mark4 = MW_ORIG_F_ACCEPTED, .want_optlen = SIN6, .error = ENOENT,
	  .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "where conntrack answered, its answer stays", MW_SOL_IPV6, SIN6, SIN6, .kernel = -ENOENT,
	  .want_optlen = SIN6, .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "a UDP socket keeps the kernel's answer", MW_SOL_IPV6, SIN6, SIN6, .udp = 1,
	  .mark6 = MW_ORIG_F_ACCEPTED, .want_optlen = SIN6 },
	{ "no socket: the kernel's answer", MW_SOL_IPV6, SIN6, SIN6, .no_sk = 1,
	  .want_optlen = SIN6 },
	{ "SO_ORIGINAL_DST at SOL_IP does not read the IPv6 destination", MW_SOL_IP, 16, 16,
	  .mark6 = MW_ORIG_F_ACCEPTED, .want_optlen = 16, .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
};

static void run_case(struct mw_test_run *run, const struct sockopt6_case *c)
{
	static unsigned char buf[MW_PAGE_SIZE + 64];
	struct bpf_sock sk = { .family = MW_AF_INET6, .type = MW_SOCK_STREAM,
			       .protocol = c->udp ? IPPROTO_UDP : MW_IPPROTO_TCP,
			       .bound_dev_if = c->bound_dev_if,
			       .src_port = OUT_PORT, .dst_port = bpf_htons(40000) };
	int kernel = c->kernel ? c->kernel : -ENOPROTOOPT;
	struct bpf_sockopt ctx = {
		.sk = c->no_sk ? NULL : &sk,
		.optval = buf,
		.optval_end = buf + c->buf,
		.level = c->level,
		.optname = MW_IP6T_SO_ORIGINAL_DST,
		.optlen = c->optlen,
		.retval = kernel,
	};
	const char *orig = c->orig ? c->orig : ORIG_IP6;
	int verdict, untouched = 1, from;

	mw_test_settings(0, MW_IPV6_INTERCEPT, SIDECAR_UID);
	mw_test_task.netns_cookie = POD_A;
	mw_test_task.uid = SIDECAR_UID;
	memset(buf, FILL, sizeof(buf));
	if (c->mark6) {
		struct mw_orig6 *o;

		mw_test_mark6(&sk, c->mark6);
		o = mw_test_sk_storage(&mw_orig6_sk, &sk);
		mw_test_ip6(orig, o->ip6);
		o->flowinfo = bpf_htonl(FLOWINFO);
	}
	if (c->mark4)
		mw_test_mark(&sk, c->mark4);

	verdict = mw_sockopt_get(&ctx);

	MW_EXPECT_EQ(run, verdict, MW_ALLOW, "verdict");
	MW_EXPECT_EQ(run, ctx.optlen, c->want_optlen, "optlen");
	if (c->answered) {
		const struct sockaddr_in6 *sin6 = (const void *)buf;
		__u32 want[4];

		mw_test_ip6(orig, want);
		MW_EXPECT_EQ(run, ctx.retval, 0, "retval");
		MW_EXPECT_EQ(run, sin6->sin6_family, MW_AF_INET6, "sin6_family");
		MW_EXPECT_EQ(run, bpf_ntohs(sin6->sin6_port), ORIG_PORT, "sin6_port");
		MW_EXPECT_EQ(run, bpf_ntohl(sin6->sin6_flowinfo), FLOWINFO, "sin6_flowinfo");
		MW_EXPECT_EQ(run, memcmp(&sin6->sin6_addr, want, 16), 0, "sin6_addr");
		MW_EXPECT_EQ(run, sin6->sin6_scope_id, c->want_scope, "sin6_scope_id");
		from = SIN6;
	} else {
		MW_EXPECT_EQ(run, ctx.retval, c->error ? -c->error : kernel, "retval");
		from = 0;
	}
	for (size_t i = from; i < sizeof(buf); i++)
		if (buf[i] != FILL)
			untouched = 0;
	MW_EXPECT_EQ(run, untouched, 1, "buffer past the answer untouched");
	mw_test_expect_stats(run, c->stats);
	if (c->answered) {
		__u32 dst[4];

		mw_test_ip6(orig, dst);
		mw_test_expect_answer_event(run, 1, dst);
	}
	else
		MW_EXPECT_EQ(run, mw_test_nevents, 0, "trace events");
}

MW_TEST_MAIN("bpf_sockopt.c (IP6T_SO_ORIGINAL_DST)", cases, run_case)
