// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * getsockopt (bpf/bpf_sockopt.c), the real source compiled for the host, on
 * a table of calls: the sidecar's SO_ORIGINAL_DST answered from its
 * accepted socket's storage, everything else left as the kernel answered
 * it (level and optname matched exactly, short buffers, large optlen).
 * Linux 6.18 answers BPF_PROG_TEST_RUN for cgroup_sockopt programs with
 * ENOTSUPP. Not here: the NULL-buffer check reads the syscall's registers
 * (x86 BPF builds only); the host build takes every buffer as not NULL, and
 * netns_e2e covers that case.
 */
#define MW_CFG_CONST
#include "../bpf_sockopt.c"
#include "datapath.h"

#include <string.h>

#define SOL_SOCKET	1
#define SOL_IPV6	41
#define KERNEL_RETVAL	(-2)	/* what the kernel answered before the hook: ENOENT */
#define FILL		0xa5	/* the buffer's bytes before the call */

struct sockopt_case {
	const char *what;
	int level;
	int optname;
	int optlen;		/* as the kernel passes it */
	int buf;		/* bytes between optval and optval_end */
	int no_sk;
	__u16 mark;		/* the socket's mw_orig_sk flags (ORIG_IP:ORIG_PORT) */
	/* what the hook must leave */
	int answered;		/* a sockaddr_in for ORIG_IP:ORIG_PORT, retval 0 */
	int want_optlen;	/* when not answered */
	int error;		/* when not answered: the errno it sets (0: the kernel's stays) */
	__u32 stats;
};

#define SIN	((int)sizeof(struct sockaddr_in))

static const struct sockopt_case cases[] = {
	{ "the sidecar's SO_ORIGINAL_DST is answered", MW_SOL_IP, MW_SO_ORIGINAL_DST, SIN, SIN,
	  .mark = MW_ORIG_F_ACCEPTED, .answered = 1, .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a larger buffer is answered with a sockaddr_in's length", MW_SOL_IP,
	  MW_SO_ORIGINAL_DST, 64, 64, .mark = MW_ORIG_F_ACCEPTED, .answered = 1,
	  .stats = STAT(MW_STAT_SOCKOPT_ANSWERED) },
	{ "a buffer too short is EINVAL, as netfilter's", MW_SOL_IP, MW_SO_ORIGINAL_DST,
	  SIN - 1, SIN - 1, .mark = MW_ORIG_F_ACCEPTED, .want_optlen = SIN - 1,
	  .error = MW_EINVAL },
	{ "a short optlen is EINVAL, whatever the kernel's copy", MW_SOL_IP,
	  MW_SO_ORIGINAL_DST, SIN - 8, SIN, .mark = MW_ORIG_F_ACCEPTED, .want_optlen = SIN - 8,
	  .error = MW_EINVAL },
	{ "a socket meshwire did not redirect keeps the kernel's answer", MW_SOL_IP,
	  MW_SO_ORIGINAL_DST, SIN, SIN, .want_optlen = SIN,
	  .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "the app's own redirected socket keeps the kernel's answer", MW_SOL_IP,
	  MW_SO_ORIGINAL_DST, SIN, SIN, .mark = MW_ORIG_F_CONNECT, .want_optlen = SIN,
	  .stats = STAT(MW_STAT_SOCKOPT_UNKNOWN) },
	{ "no socket: the kernel's answer", MW_SOL_IP, MW_SO_ORIGINAL_DST, SIN, SIN,
	  .no_sk = 1, .want_optlen = SIN },
	{ "optname 80 at SOL_SOCKET is not SO_ORIGINAL_DST", SOL_SOCKET, MW_SO_ORIGINAL_DST,
	  SIN, SIN, .mark = MW_ORIG_F_ACCEPTED, .want_optlen = SIN },
	{ "IP6T_SO_ORIGINAL_DST (SOL_IPV6) is not answered", SOL_IPV6, MW_SO_ORIGINAL_DST,
	  28, 28, .mark = MW_ORIG_F_ACCEPTED, .want_optlen = 28 },
	{ "another SOL_IP option is the kernel's", MW_SOL_IP, 81, SIN, SIN,
	  .mark = MW_ORIG_F_ACCEPTED, .want_optlen = SIN },
	{ "a call past a page passes the user's buffer through", SOL_SOCKET, 4,
	  MW_PAGE_SIZE + 1, MW_PAGE_SIZE, .want_optlen = 0 },
	{ "a call of exactly a page is left alone", SOL_SOCKET, 4, MW_PAGE_SIZE, MW_PAGE_SIZE,
	  .want_optlen = MW_PAGE_SIZE },
	{ "iptables' large SOL_IP calls pass through", MW_SOL_IP, 64, 70000, MW_PAGE_SIZE,
	  .want_optlen = 0 },
};

static void run_case(struct mw_test_run *run, const struct sockopt_case *c)
{
	static unsigned char buf[MW_PAGE_SIZE + 64];
	struct bpf_sock sk = { .family = MW_AF_INET, .type = MW_SOCK_STREAM,
			       .src_ip4 = mw_test_ip4("127.0.0.1"), .src_port = OUT_PORT,
			       .dst_ip4 = mw_test_ip4("127.0.0.1"), .dst_port = bpf_htons(40000) };
	struct bpf_sockopt ctx = {
		.sk = c->no_sk ? NULL : &sk,
		.optval = buf,
		.optval_end = buf + c->buf,
		.level = c->level,
		.optname = c->optname,
		.optlen = c->optlen,
		.retval = KERNEL_RETVAL,
	};
	int verdict, untouched = 1;

	mw_test_settings(0, 1, SIDECAR_UID);
	mw_test_task.netns_cookie = POD_A;
	mw_test_task.uid = SIDECAR_UID;
	memset(buf, FILL, sizeof(buf));
	if (c->mark)
		mw_test_mark(&sk, c->mark);

	verdict = mw_sockopt_get(&ctx);

	MW_EXPECT_EQ(run, verdict, MW_ALLOW, "verdict");
	if (c->answered) {
		const struct sockaddr_in *sin = (const void *)buf;

		MW_EXPECT_EQ(run, ctx.optlen, SIN, "optlen");
		MW_EXPECT_EQ(run, ctx.retval, 0, "retval");
		MW_EXPECT_EQ(run, sin->sin_family, MW_AF_INET, "sin_family");
		MW_EXPECT_EQ(run, sin->sin_addr.s_addr, mw_test_ip4(ORIG_IP), "sin_addr");
		MW_EXPECT_EQ(run, bpf_ntohs(sin->sin_port), ORIG_PORT, "sin_port");
		for (size_t i = 0; i < sizeof(sin->__pad); i++)
			if (sin->__pad[i])
				mw_test_fail(run, "sin_zero[%zu] is %#x", i, sin->__pad[i]);
		for (size_t i = SIN; i < sizeof(buf); i++)
			if (buf[i] != FILL)
				untouched = 0;
		MW_EXPECT_EQ(run, untouched, 1, "buffer past the sockaddr_in untouched");
	} else {
		MW_EXPECT_EQ(run, ctx.optlen, c->want_optlen, "optlen");
		MW_EXPECT_EQ(run, ctx.retval, c->error ? -c->error : KERNEL_RETVAL, "retval");
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i] != FILL)
				untouched = 0;
		MW_EXPECT_EQ(run, untouched, 1, "buffer untouched");
	}
	mw_test_expect_stats(run, c->stats);
	if (c->answered) {
		__u32 dst[4] = { mw_test_ip4(ORIG_IP), 0, 0, 0 };

		mw_test_expect_answer_event(run, 0, dst);
	} else {
		MW_EXPECT_EQ(run, mw_test_nevents, 0, "trace events");
	}
}

MW_TEST_MAIN("bpf_sockopt.c", cases, run_case)
