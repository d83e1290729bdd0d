/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef MESHWIRE_CONSTS_H
#define MESHWIRE_CONSTS_H

/*
 * What the loader reads is an enum, not a #define: BTF carries enums, so the
 * loader's mirrors (loader/src/datapath/layout.rs) are checked against the built
 * objects (bpf_alignchecker.c records each of these types).
 */

/* Map capacities. The loader reports them; see docs/operating.md, "Limits". */
enum mw_capacity {
	MW_MAX_PODS		= 4096,
	MW_MAX_EXCL_PORTS	= 4096,
	MW_MAX_EXCL_CIDRS	= 4096,
	MW_MAX_TUPLES		= 65536,
	MW_MAX_POD_IPS		= 4096,
	MW_MAX_EXCL_IN		= 4096,
	MW_MAX_INCL_CIDRS	= 4096,
	MW_MAX_FLOWS		= 65536,
	MW_MAX_SOCKS		= 65536,
	MW_MAX_DNS_SERVERS	= 256,
	/* mw_accel_hints (LRU): destinations whose connections acceleration learns of */
	MW_MAX_ACCEL_HINTS	= 16384,
	/* mw_events (trace ring buffer), bytes: a power of two, page multiple. */
	MW_EVENTS_BYTES		= 256 * 1024,
};

/* mw_pod.flags */
enum mw_pod_flag {
	MW_POD_F_MESHED		= 1U << 0,
	MW_POD_F_ACCEL		= 1U << 1,	/* its mesh hops are accelerated, when the node runs it */
	/* Istio's include lists: only what they name is steered (`*` is no flag). */
	MW_POD_F_OUT_SELECT	= 1U << 2,	/* outbound: included ports and ranges only */
	MW_POD_F_IN_SELECT	= 1U << 3,	/* inbound: included ports only */
	MW_POD_F_DNS		= 1U << 4,	/* DNS to port 53 goes to its sidecar's DNS proxy */
};

/* mw_port_key.dir */
enum mw_dir {
	MW_DIR_OUT		= 1,
	MW_DIR_IN		= 2,
	MW_DIR_OUT_INCL		= 3,	/* an included outbound port (MW_POD_F_OUT_SELECT) */
	MW_DIR_IN_INCL		= 4,	/* an included inbound port (MW_POD_F_IN_SELECT) */
};

/* mw_orig4.flags */
enum mw_orig_flag {
	MW_ORIG_F_CONNECT	= 1U << 0,	/* on the app's socket, until established */
	MW_ORIG_F_ACCEPTED	= 1U << 1,	/* on the sidecar's accepted socket */
	/* 1U << 2 was MW_ORIG_F_DELIVER (sockops now tells that hop by its owner): not reused,
	 * sockets an older datapath marked may outlive an upgrade. */
	MW_ORIG_F_DNS		= 1U << 3,	/* a DNS socket sent to the DNS proxy: the resolver it named */
};

/* mw_flow4.flags */
enum mw_flow_flag {
	MW_FLOW_F_FIN_IN	= 1U << 0,	/* FIN seen from the remote peer */
	MW_FLOW_F_FIN_OUT	= 1U << 1,	/* FIN seen from the pod */
};

/* mw_flow4_fin.acked */
enum mw_fin_acked {
	MW_FIN_ACKED_IN		= 1U << 0,	/* the pod acknowledged the peer's FIN */
	MW_FIN_ACKED_OUT	= 1U << 1,	/* the peer acknowledged the pod's FIN */
};

/* mw_flow4_syn.flags */
enum mw_syn_flag {
	MW_SYN_F_SYNACK		= 1U << 0,	/* the sidecar's SYN-ACK went out */
};

/* mw_settings.ipv6: interception.ipv6, what meshed pods' native IPv6 TCP meets */
enum mw_ipv6_policy {
	MW_IPV6_PASS		= 0,	/* goes direct, unmeshed */
	MW_IPV6_REFUSE		= 1,	/* refused (connect6 EPERM, tc drops SYNs to the pod) */
	MW_IPV6_INTERCEPT	= 2,	/* steered like IPv4, outbound and inbound */
};

/* mw_accel_state.flags (lib/meshwire_accel.h says what they are for) */
enum mw_accel_flag {
	MW_ACCEL_RX		= 1U << 0,	/* a message was redirected to this socket */
	MW_ACCEL_CLOSING	= 1U << 1,	/* this socket sent its FIN: no more redirects to it */
	MW_ACCEL_TCP_TX		= 1U << 2,	/* this socket sent through TCP: it never redirects again */
	MW_ACCEL_LAG		= 1U << 3,	/* its peer fell behind: TCP until the peer read all of it */
	MW_ACCEL_LEAVE		= 1U << 4,	/* a bulk sender: sockops takes it out of the socket map */
	MW_ACCEL_CONNECT	= 1U << 5,	/* the hop's connecting end: it reports to mw_accel_hints at its FIN */
};

/* mw_accel_hint_key.flags: what the key's address is */
enum mw_accel_hint_flag {
	MW_ACCEL_HINT_F_IP6	= 1U << 0,	/* ip is an IPv6 address (native IPv6 hop) */
	MW_ACCEL_HINT_F_ORIG	= 1U << 1,	/* an app's hop to its sidecar, keyed by its original destination */
};

/* mw_settings.accel_short: [acceleration] short_connections */
enum mw_accel_short {
	MW_ACCEL_SHORT_ACCELERATE	= 0,	/* every mesh hop is accelerated */
	MW_ACCEL_SHORT_LEARN		= 1,	/* not a hop whose destination's connections were short of late */
};

/*
 * Learning which destinations' connections are short (lib/meshwire_accel.h,
 * "Short connections"). A hop that carried at most MW_ACCEL_SHORT_MSGS
 * messages, both directions together, by its connecting end's FIN was short
 * (a `Connection: close` request and its response are two; two exchanges
 * are four, and gain as little from a redirect as they pay for the socket
 * map). A destination whose last MW_ACCEL_SHORT_RUN accelerated connections
 * were short (a long one resets the run) gets its next connections
 * unaccelerated while the last short report is younger than
 * MW_ACCEL_HINT_WINDOW_NS: unaccelerated connections report nothing, so once
 * it expires the next connection is accelerated again and reports (a probe
 * per window at high connection rates; at rates under one per window
 * nothing is ever skipped).
 */
#define MW_ACCEL_SHORT_MSGS	4
#define MW_ACCEL_SHORT_RUN	4
#define MW_ACCEL_HINT_WINDOW_NS	(200ULL * 1000 * 1000)

/*
 * An accelerated socket redirects while its peer holds fewer unread
 * redirected bytes than this (its ingress queue, sk_psock.msg_tot_len);
 * beyond, it sends through TCP, whose window holds the sender back, until
 * the peer has read everything (lib/meshwire_accel.h). TCP's own limit on
 * unread data is of the same order (tcp_rmem's default maximum: 6 MiB).
 */
#define MW_ACCEL_BACKLOG_MAX	(4U << 20)

/*
 * A socket whose peer holds this many unread redirected bytes is a bulk
 * sender whose reader cannot keep up: the hop cannot gain (a writer
 * redirecting to a busy reader waits for its socket lock at every message,
 * and a socket in the map that sends through TCP pays tcp_bpf's copy into an
 * sk_msg on top of TCP). If nothing was ever redirected to it, it leaves
 * acceleration for good (MW_ACCEL_LEAVE, lib/meshwire_accel.h); otherwise
 * the bound above holds. The bound itself: a lower one (64 KiB) also took
 * hops whose reader keeps up off the redirect, and lost the same-node bulk
 * gain (benchmarking.md).
 */
#define MW_ACCEL_BULK_MIN	MW_ACCEL_BACKLOG_MAX

/* cgroup sock_addr / sockopt verdicts */
#define MW_ALLOW		1
#define MW_DENY			0

/* Not in the UAPI headers we build against. */
#define MW_SOL_IP		0	/* SOL_IP == IPPROTO_IP */
#define MW_SO_ORIGINAL_DST	80	/* linux/netfilter_ipv4.h */
#define MW_SOL_IPV6		41	/* SOL_IPV6 == IPPROTO_IPV6 */
#define MW_IP6T_SO_ORIGINAL_DST	80	/* linux/netfilter_ipv6/ip6_tables.h */
#define MW_PAGE_SIZE		4096
#define MW_AF_INET		2
#define MW_AF_INET6		10
#define MW_SOCK_STREAM		1
#define MW_IPPROTO_UDP		17
#define MW_DNS_PORT		53	/* where resolvers listen */
#define MW_LOOPBACK_NET4	0x7f000000U	/* 127.0.0.0/8, host order */
#define MW_LOOPBACK_ADDR4	0x7f000001U	/* 127.0.0.1, host order */
#define MW_OUT_SRC_ADDR4	0x7f800001U	/* 127.128.0.1, host order: the first of
						   [interception] outbound_sources */
#define MW_V4MAPPED_PREFIX	0x0000ffffU	/* ::ffff:0:0/96, third word, host order */

#endif /* MESHWIRE_CONSTS_H */
