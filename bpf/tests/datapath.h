/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every host test of a program shares: the maps of lib/meshwire_maps.h
 * registered with the harness, the node the cases start from, and the loop
 * over a table of cases. Included after the program source (the maps and
 * mw_cfg are defined there).
 */
#ifndef MW_TEST_DATAPATH_H
#define MW_TEST_DATAPATH_H

#include "harness.h"

#define POD_A		0xa001ULL	/* meshed */
#define POD_B		0xb002ULL	/* meshed, accelerated */
#define UNMESHED	0xc003ULL	/* a namespace not in mw_pods */
#define POD_A_IP	"10.1.0.10"
#define POD_B_IP	"10.1.0.11"
#define POD_A_IP6	"fd00:10:1::10"
#define POD_B_IP6	"fd00:10:1::11"
#define SIDECAR_UID	1500
#define OUT_PORT	15001
#define IN_PORT		15003
#define DNS_PORT	15053
#define ORIG_IP		"93.184.216.34"	/* where an app's connection was going */
#define ORIG_PORT	80
#define ORIG_IP6	"2001:db8::1"	/* where an app's native IPv6 connection was going */

#define APP_UID		1000		/* an app's sockets' owner */

#ifdef MESHWIRE_ACCEL_H
/*
 * The kernel's socket as bpf_skc_to_tcp_sock answers it to sockops: its
 * owner (sk_uid, lib/meshwire_policy.h's struct sock___mw) and its psock
 * (sk_user_data, lib/meshwire_accel.h's tcp_sock___mwa), one object as in the
 * kernel. The host layout keeps sk_uid clear of tcp_sock___mwa's fields.
 */
union mw_test_tcp {
	struct sock___mw owner;
	struct tcp_sock___mwa tcp;
};
_Static_assert(offsetof(struct sock___mw, sk_uid) >= sizeof(struct tcp_sock___mwa),
	       "sock___mw's host padding no longer clears tcp_sock___mwa");
#endif

/* Shorthands of the tables. */
#define STAT(s)		MW_STAT_BIT(s)
#define ACTIVE		BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
#define PASSIVE		BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB
#define STATE		BPF_SOCK_OPS_STATE_CB
#define RTT		BPF_SOCK_OPS_RTT_CB
/* The callbacks an accelerated socket asks for: its state changes, and ACKs of its TCP data. */
#define CB_ACCEL	(BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG)
/* In a sockops case: the callback flags the socket has after the event (checked). */
#define CB_AFTER(flags)	.check_cb = 1, .cb_after = (flags)

/* A new map of lib/meshwire_maps.h gets a line here. */
static inline void mw_test_register_maps(void)
{
	MW_TEST_MAP(mw_pods);
	MW_TEST_MAP(mw_excl_ports);
	MW_TEST_MAP(mw_excl_cidr4);
	MW_TEST_MAP(mw_excl_cidr6);
	MW_TEST_MAP(mw_incl_cidr4);
	MW_TEST_MAP(mw_incl_cidr6);
	MW_TEST_SK_STORAGE(mw_orig_sk);
	MW_TEST_MAP(mw_orig_tuple4);
	MW_TEST_SK_STORAGE(mw_orig6_sk);
	MW_TEST_MAP(mw_orig_tuple6);
	MW_TEST_MAP(mw_pod_ips);
	MW_TEST_MAP(mw_pod_uid);
	MW_TEST_MAP(mw_excl_in4);
	MW_TEST_MAP(mw_pod_ips6);
	MW_TEST_MAP(mw_excl_in6);
	MW_TEST_MAP(mw_flow4);
	MW_TEST_MAP(mw_flow4_fin);
	MW_TEST_MAP(mw_flow4_syn);
	MW_TEST_MAP(mw_flow6);
	MW_TEST_MAP(mw_flow6_fin);
	MW_TEST_MAP(mw_flow6_syn);
	MW_TEST_MAP(mw_sock_hash);
	MW_TEST_MAP(mw_accel_state);
	MW_TEST_MAP(mw_sock_hash6);
	MW_TEST_MAP(mw_accel_state6);
	MW_TEST_MAP(mw_accel_hints);
	MW_TEST_MAP(mw_dns_servers4);
	MW_TEST_MAP(mw_dns_servers6);
	MW_TEST_MAP(mw_stats);
	MW_TEST_RINGBUF(mw_events);
}

/* Two meshed dual-stack pods, B accelerated, as the loader registers them. */
static inline void mw_test_pods(void)
{
	struct mw_pod a = { .flags = MW_POD_F_MESHED };
	struct mw_pod b = { .flags = MW_POD_F_MESHED | MW_POD_F_ACCEL };
	__u64 ca = POD_A, cb = POD_B;
	struct mw_ip6_key ip6;
	__u32 ip;

	bpf_map_update_elem(&mw_pods, &ca, &a, BPF_ANY);
	bpf_map_update_elem(&mw_pods, &cb, &b, BPF_ANY);
	ip = mw_test_ip4(POD_A_IP);
	bpf_map_update_elem(&mw_pod_ips, &ip, &ca, BPF_ANY);
	ip = mw_test_ip4(POD_B_IP);
	bpf_map_update_elem(&mw_pod_ips, &ip, &cb, BPF_ANY);
	mw_test_ip6(POD_A_IP6, ip6.addr);
	bpf_map_update_elem(&mw_pod_ips6, &ip6, &ca, BPF_ANY);
	mw_test_ip6(POD_B_IP6, ip6.addr);
	bpf_map_update_elem(&mw_pod_ips6, &ip6, &cb, BPF_ANY);
}

/* The loader's settings: the default ports, traces and events on. */
static inline void mw_test_settings(int accel, int ipv6, __u32 sidecar_uid)
{
	mw_cfg.sidecar_uid = sidecar_uid;
	mw_cfg.outbound_port = OUT_PORT;
	mw_cfg.inbound_port = IN_PORT;
	mw_cfg.dns_port = DNS_PORT;
	mw_cfg.dns_servers = 0;
	mw_cfg.accel = accel;
	mw_cfg.ipv6 = ipv6;	/* enum mw_ipv6_policy */
	mw_cfg.debug = 1;
	mw_cfg.trace = 1;
}

/* Socket storage as an earlier hook left it: ORIG_IP:ORIG_PORT, `flags`. */
static inline void mw_test_mark(struct bpf_sock *sk, __u16 flags)
{
	struct mw_orig4 *o = bpf_sk_storage_get(&mw_orig_sk, sk, NULL,
						BPF_SK_STORAGE_GET_F_CREATE);

	o->ip4 = mw_test_ip4(ORIG_IP);
	o->port = bpf_htons(ORIG_PORT);
	o->flags = flags;
}

/* The same in mw_orig6_sk: ORIG_IP6:ORIG_PORT, `flags`. */
static inline void mw_test_mark6(struct bpf_sock *sk, __u16 flags)
{
	struct mw_orig6 *o = bpf_sk_storage_get(&mw_orig6_sk, sk, NULL,
						BPF_SK_STORAGE_GET_F_CREATE);

	mw_test_ip6(ORIG_IP6, o->ip6);
	o->port = bpf_htons(ORIG_PORT);
	o->flags = flags;
}

/*
 * The getsockopt hook's trace event for an answer to POD_A's sidecar on its
 * outbound port, to a client on port 40000 that dialled dst:ORIG_PORT (ip6
 * 0: dst[0] is an IPv4 address, the other words 0; ip6 1: an IPv6 one).
 */
static inline void mw_test_expect_answer_event(struct mw_test_run *run, int ip6,
					       const __u32 *dst)
{
	const struct mw_event *ev = &mw_test_events[0];

	MW_EXPECT_EQ(run, mw_test_nevents, 1, "trace events");
	if (mw_test_nevents != 1)
		return;
	MW_EXPECT_EQ(run, ev->hook, MW_HOOK_GETSOCKOPT, "event hook");
	MW_EXPECT_EQ(run, ev->decision, MW_DEC_SOCKOPT_ANSWERED, "event decision");
	MW_EXPECT_EQ(run, ev->netns_cookie, POD_A, "event netns cookie");
	MW_EXPECT_EQ(run, ev->src_port, 40000, "event client port");
	MW_EXPECT_EQ(run, ev->ip6, ip6, "event family (ip6)");
	for (int i = 0; i < 4; i++)
		MW_EXPECT_EQ(run, ev->dst_ip[i], dst[i], "event original destination");
	MW_EXPECT_EQ(run, ev->dst_port, ORIG_PORT, "event original port");
	MW_EXPECT_EQ(run, ev->to_port, OUT_PORT, "event sidecar port");
	MW_EXPECT_EQ(run, ev->uid, SIDECAR_UID, "event uid");
}

/* main(): each row of `table` from empty maps, through `run_case`. */
#define MW_TEST_MAIN(suite_name, table, run_case)				\
	int main(void)								\
	{									\
		struct mw_test_run run = { .suite = suite_name };		\
										\
		mw_test_register_maps();					\
		for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {	\
			mw_test_begin(&run, table[i].what);			\
			mw_test_reset();					\
			run_case(&run, &table[i]);				\
			mw_test_end(&run);					\
		}								\
		return mw_test_summary(&run);					\
	}

#endif /* MW_TEST_DATAPATH_H */
