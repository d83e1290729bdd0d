/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Decision events: one struct mw_event per decision, into the mw_events ring
 * buffer, for `meshwire-loader trace`. Gated by mw_cfg.trace, a constant the
 * loader writes into .rodata before load: with trace off the verifier sees
 * `if (0)` and removes the whole call, arguments included, so it costs
 * nothing. With it on, an event is one bpf_ringbuf_output of 88 bytes that
 * never waits: a full ring buffer drops the event and counts it
 * (MW_STAT_TRACE_DROPPED).
 */
#ifndef MESHWIRE_TRACE_H
#define MESHWIRE_TRACE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "meshwire_config.h"
#include "meshwire_maps.h"

/*
 * Who an event names (the last argument of mw_emit: two values). Hooks that
 * know no task (tc, sockops): MW_EV_NO_TASK. Cgroup hooks: the caller's pid
 * and a UID: the task's real UID (MW_EV_TASK), or for the socket hooks that
 * decide by who owns the socket, the UID they decide by (MW_EV_SOCK(sk),
 * mw_decision_uid of meshwire_policy.h), so that trace shows why a
 * connection went direct or not.
 */
#define MW_EV_NO_TASK	0, 0
#define MW_EV_TASK	1, (__u32)bpf_get_current_uid_gid()
#define MW_EV_SOCK(sk)	1, mw_decision_uid(sk)

/* An address into an event: one word (IPv4) or four (IPv6); NULL: none. */
static __always_inline void mw_ev_addr(__u32 *into, const __u32 *addr, const int is6)
{
	if (!addr)
		return;
	into[0] = addr[0];
	if (is6) {
		into[1] = addr[1];
		into[2] = addr[2];
		into[3] = addr[3];
	}
}

static __always_inline void mw_emit_event(__u8 hook, __u8 decision, __u64 netns_cookie,
					  const __u32 *src, __u16 src_port,
					  const __u32 *dst, __u16 dst_port,
					  const __u32 *to, __u16 to_port, const int is6,
					  const int task, __u32 uid)
{
	struct mw_event ev = {
		.ts_ns = bpf_ktime_get_ns(),
		.netns_cookie = netns_cookie,
		.src_port = src_port,
		.dst_port = dst_port,
		.to_port = to_port,
		.hook = hook,
		.decision = decision,
		.ip6 = is6,
	};

	mw_ev_addr(ev.src_ip, src, is6);
	mw_ev_addr(ev.dst_ip, dst, is6);
	mw_ev_addr(ev.to_ip, to, is6);
	if (task) {
		ev.pid = (__u32)(bpf_get_current_pid_tgid() >> 32);
		ev.uid = uid;
	}
	if (bpf_ringbuf_output(&mw_events, &ev, sizeof(ev), 0))
		mw_count(MW_STAT_TRACE_DROPPED);
}

/*
 * mw_emit(hook, decision, cookie, src ip, src port, dst ip, dst port,
 *         to ip, to port, MW_EV_...): IPv4 addresses in network order, ports
 * in host order, 0 for what the hook does not know. With trace off, nothing
 * of it is evaluated (a UID read included).
 */
#define mw_emit(hook, decision, cookie, src, sport, dst, dport, to, tport, ...)	\
	do {									\
		if (mw_cfg.trace) {						\
			__u32 mw_ev4[3] = { src, dst, to };			\
										\
			mw_emit_event(hook, decision, cookie, &mw_ev4[0], sport,	\
				      &mw_ev4[1], dport, &mw_ev4[2], tport, 0,	\
				      __VA_ARGS__);				\
		}								\
	} while (0)

/*
 * mw_emit with addresses by pointer (NULL: unknown): four words each for
 * is6, one for IPv4; mw_emit6 for IPv6 ones.
 */
#define mw_emit_at(hook, decision, cookie, src, sport, dst, dport, to, tport, is6, ...)	\
	do {									\
		if (mw_cfg.trace)						\
			mw_emit_event(hook, decision, cookie, src, sport, dst,	\
				      dport, to, tport, is6, __VA_ARGS__);	\
	} while (0)
#define mw_emit6(hook, decision, cookie, src, sport, dst, dport, to, tport, ...)	\
	mw_emit_at(hook, decision, cookie, src, sport, dst, dport, to, tport, 1, __VA_ARGS__)

/* ::1, for an event's address (an IPv6 redirection's new destination). */
#define MW_EV_LO6	((const __u32[4]){ 0, 0, 0, bpf_htonl(1) })

#endif /* MESHWIRE_TRACE_H */
