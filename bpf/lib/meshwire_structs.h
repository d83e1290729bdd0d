/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structures shared by the BPF programs and the loader. This header is the one
 * definition: the loader's #[repr(C)] mirrors are checked against the BTF of
 * the built objects (loader/src/datapath/layout.rs), so a change here that is not
 * mirrored fails the unit tests.
 */
#ifndef MESHWIRE_STRUCTS_H
#define MESHWIRE_STRUCTS_H

#include <linux/types.h>
#include <linux/bpf.h>	/* struct bpf_spin_lock */

/* Load-time settings, written into .rodata by the loader before load. */
struct mw_settings {
	__u32 sidecar_uid;
	__u16 outbound_port;	/* host order */
	__u16 inbound_port;	/* host order */
	__u8  debug;		/* 1: bpf_printk every decision */
	__u8  accel;		/* 1: sockops fills mw_sock_hash for sk_msg */
	__u8  trace;		/* 1: every decision is an event in mw_events */
	__u8  ipv6;		/* enum mw_ipv6_policy */
	__u16 dns_port;		/* host order: the sidecar's DNS proxy ([dns] port) */
	__u8  dns_servers;	/* 1: only resolvers in mw_dns_servers4/6 are captured */
	__u8  out_sources;	/* > 1: loopback source addresses steered sockets spread over */
	__u8  accel_short;	/* enum mw_accel_short: [acceleration] short_connections */
	__u8  pad[3];
};

/* Value of mw_pods, keyed by the pod's network-namespace cookie. */
struct mw_pod {
	__u32 flags;		/* MW_POD_F_* */
};

/* Key of mw_excl_ports. netns_cookie 0 holds the node-wide list. */
struct mw_port_key {
	__u64 netns_cookie;
	__u16 port;		/* host order */
	__u8  dir;		/* MW_DIR_* */
	__u8  pad[5];
};

/*
 * Key of mw_excl_cidr4 (LPM trie). The cookie is part of the matched prefix,
 * so prefixlen is 64 + the CIDR's length; netns_cookie 0 holds the node-wide
 * list. The cookie is split in two words to keep the key free of padding.
 */
struct mw_cidr4_key {
	__u32 prefixlen;
	__u32 cookie_hi;
	__u32 cookie_lo;
	__u32 addr;		/* network order */
};

/*
 * Key of mw_excl_cidr6 (LPM trie): mw_cidr4_key's shape with an IPv6
 * address, prefixlen 64 + the CIDR's length.
 */
struct mw_cidr6_key {
	__u32 prefixlen;
	__u32 cookie_hi;
	__u32 cookie_lo;
	__u32 addr[4];		/* network order */
};

/* An original destination, as the application dialled it. */
struct mw_orig4 {
	__u32 ip4;		/* network order */
	__u16 port;		/* network order */
	__u16 flags;		/* MW_ORIG_F_* */
};

/*
 * Key of mw_orig_tuple4: one redirected connection between an application
 * and its sidecar. Every pod has its own 127.0.0.1, so the netns cookie keeps
 * keys of different pods apart.
 */
struct mw_tuple4 {
	__u64 netns_cookie;
	__u32 client_ip4;	/* network order */
	__u32 server_ip4;	/* network order */
	__u16 client_port;	/* host order */
	__u16 server_port;	/* host order */
	__u32 pad;
};

/* An original IPv6 destination (mw_orig6_sk, mw_orig_tuple6). */
struct mw_orig6 {
	__u32 ip6[4];		/* network order */
	__u16 port;		/* network order */
	__u16 flags;		/* MW_ORIG_F_* */
	__u32 flowinfo;		/* accepted socket: its flow label, network order */
};

/*
 * Key of mw_orig_tuple6: mw_tuple4 for a native IPv6 connection between an
 * application and its sidecar (every pod has its own ::1: the netns cookie).
 */
struct mw_tuple6 {
	__u64 netns_cookie;
	__u32 client_ip6[4];	/* network order */
	__u32 server_ip6[4];	/* network order */
	__u16 client_port;	/* host order */
	__u16 server_port;	/* host order */
	__u32 pad;
};

/*
 * Key of mw_excl_in4: inbound destination ports never redirected to the
 * sidecar, per pod IP (tc cannot read a netns cookie on older kernels, and a
 * pod IP is unique on the node). pod_ip4 0 holds the node-wide list.
 */
struct mw_in4_key {
	__u32 pod_ip4;		/* network order */
	__u16 port;		/* host order */
	__u16 pad;
};

/*
 * Key of mw_pod_ips6: a meshed pod's IPv6 address (mw_pod_ips' twin); the
 * value is its netns cookie.
 */
struct mw_ip6_key {
	__u32 addr[4];		/* network order */
};

/*
 * Key of mw_excl_in6: mw_in4_key for a pod's IPv6 address. The node-wide
 * list stays in mw_excl_in4 (pod_ip4 0): it holds ports, for both families.
 */
struct mw_in6_key {
	__u32 pod_ip6[4];	/* network order */
	__u16 port;		/* host order */
	__u16 pad;
};

/*
 * Key of mw_flow4: one inbound connection from another node, redirected by
 * tc ingress to the sidecar's inbound port. The kernel's own socket lookup
 * makes (remote, remote port, local) unique among redirected flows.
 */
struct mw_flow4_key {
	__u32 remote_ip4;	/* network order */
	__u32 local_ip4;	/* network order */
	__u16 remote_port;	/* network order */
	__u16 pad;
};

/*
 * Key of mw_flow6, mw_flow6_fin and mw_flow6_syn: mw_flow4_key for an inbound
 * IPv6 connection. Their values are mw_flow4's, mw_flow4_fin's and
 * mw_flow4_syn's: the flow state is the same for both families.
 */
struct mw_flow6_key {
	__u32 remote_ip6[4];	/* network order */
	__u32 local_ip6[4];	/* network order */
	__u16 remote_port;	/* network order */
	__u16 pad;
};

/* Value of mw_flow4. */
struct mw_flow4 {
	__u16 orig_port;	/* network order: the port the peer dialled */
	__u16 flags;		/* MW_FLOW_F_* */
	__u32 pad;
};

/*
 * Value of mw_flow4_fin: closing state of a flow, kept apart from mw_flow4
 * (only flows that are closing have an entry): the sequence number right
 * after each side's FIN, i.e. the acknowledgement number that acknowledges
 * it, and which FINs were acknowledged.
 */
struct mw_flow4_fin {
	__u32 in_end;		/* ack number acknowledging the remote peer's FIN */
	__u32 out_end;		/* ack number acknowledging the pod's FIN */
	__u32 acked;		/* MW_FIN_ACKED_* */
	__u32 pad;
};

/*
 * Value of mw_flow4_syn: a handshake in progress, the port the peer dialled
 * and, once the sidecar's SYN-ACK went out, the acknowledgement number that
 * completes it.
 */
struct mw_flow4_syn {
	__u16 orig_port;	/* network order */
	__u16 flags;		/* MW_SYN_F_* */
	__u32 synack_end;	/* the SYN-ACK's sequence number + 1 */
};

/*
 * Key of mw_sock_hash: an established socket, seen from itself. A message
 * sent on one socket is redirected to the socket whose key is its own with
 * local and remote swapped. Loopback pairs are told apart by netns cookie.
 */
struct mw_sock_key {
	__u64 netns_cookie;
	__u32 local_ip4;	/* network order */
	__u32 remote_ip4;	/* network order */
	__u32 local_port;	/* host order */
	__u32 remote_port;	/* host order */
};

/*
 * Key of mw_sock_hash6 and mw_accel_state6: mw_sock_key for a native IPv6
 * socket (v4-mapped ones are IPv4 connections: mw_sock_key). The netns
 * cookie only over loopback (::1), as for IPv4.
 */
struct mw_sock6_key {
	__u64 netns_cookie;
	__u32 local_ip6[4];	/* network order */
	__u32 remote_ip6[4];	/* network order */
	__u32 local_port;	/* host order */
	__u32 remote_port;	/* host order */
};

/*
 * Value of mw_accel_state (mw_accel_state6), one per socket in mw_sock_hash
 * (mw_sock_hash6) (acceleration; lib/meshwire_accel.h). The loader only
 * copies entries across an upgrade (loader/src/datapath/upgrade.rs: an
 * earlier version's 8-byte value, without psock, and its 16-byte one, without
 * msgs, are this one's beginning).
 */
struct mw_accel_state {
	struct bpf_spin_lock lock;
	__u32 flags;			/* MW_ACCEL_* */
	/*
	 * The socket's psock (the kernel's struct sk_psock, its sockmap state),
	 * written by sockops right after the socket entered the socket map; 0
	 * until then, or when not known (no backlog bound towards it). Its
	 * peer's sk_msg reads the socket's unread backlog through it, only with
	 * bpf_probe_read_kernel: a stale address reads garbage, never faults.
	 */
	__u64 psock;
	/*
	 * The hop's connecting end only (MW_ACCEL_CONNECT): the messages its
	 * hop carried, both directions (each end's sk_msg adds its own to this
	 * entry, atomically: two writers, and not the flags word, which the
	 * peer writes under the lock), counted up to MW_ACCEL_SHORT_MSGS + 1.
	 * Read at its FIN, to report to mw_accel_hints.
	 */
	__u32 msgs;
	__u32 pad;
};

/*
 * Key of mw_accel_hints: a hop's destination as its connecting end sees it,
 * per network namespace (the deciding socket's: each pod learns of its own
 * traffic). An app's hop to its sidecar: the original destination (all of an
 * app's hops go to the same sidecar address), marked MW_ACCEL_HINT_F_ORIG so
 * that it never shares a hint with a hop dialled to that address directly
 * (the sidecar's own onward connection, which is no mesh hop); any other hop:
 * its remote address and port. IPv4 in ip[0], the other words 0.
 */
struct mw_accel_hint_key {
	__u64 netns_cookie;
	__u32 ip[4];		/* network order */
	__u32 port;		/* host order */
	__u32 flags;		/* MW_ACCEL_HINT_F_* */
};

/*
 * Value of mw_accel_hints: what the destination's accelerated connections
 * were of late. Written without a lock by the FINs of its connections (a
 * lost update costs one decision: it is a hint).
 */
struct mw_accel_hint {
	__u64 last_short_ns;	/* bpf_ktime_get_ns() of the last short report */
	__u32 score;		/* short reports in a row, up to MW_ACCEL_SHORT_RUN; a long one: 0 */
	__u32 pad;
};

/*
 * Indexes of mw_stats (per-CPU counters). Append only: an upgrade carries the
 * pinned counters over by index (loader/src/datapath/upgrade.rs).
 */
enum mw_stat {
	MW_STAT_CONNECT_REDIRECTED = 0,
	MW_STAT_CONNECT_EXCLUDED,
	MW_STAT_CONNECT_SIDECAR,
	MW_STAT_CONNECT_ERROR,
	MW_STAT_SOCKOPS_TUPLE_ADDED,
	MW_STAT_SOCKOPS_ACCEPT_BOUND,
	MW_STAT_SOCKOPS_CLOSED,
	MW_STAT_SOCKOPS_ERROR,
	MW_STAT_SOCKOPT_ANSWERED,
	MW_STAT_SOCKOPT_UNKNOWN,
	MW_STAT_CONNECT_INBOUND,	/* sidecar -> meshed pod on this node */
	MW_STAT_TC_REDIRECTED,		/* inbound SYNs steered to the sidecar */
	MW_STAT_TC_EXCLUDED,
	MW_STAT_TC_FLOW_CLOSED,
	MW_STAT_TC_ERROR,
	MW_STAT_ACCEL_SOCK_ADDED,	/* sockets entered in mw_sock_hash */
	MW_STAT_ACCEL_ERROR,
	MW_STAT_TRACE_DROPPED,		/* events lost: mw_events was full */
	MW_STAT_CONNECT6_REFUSED,	/* native IPv6 connect() of a meshed pod refused */
	MW_STAT_TC6_DROPPED,		/* IPv6 SYN to a meshed pod dropped */
	MW_STAT_LOOP_REFUSED,		/* unsteered connection to a sidecar's capture port refused */
	MW_STAT_DNS_REDIRECTED,		/* DNS query (UDP datagram or connect, TCP connect) -> the DNS proxy */
	MW_STAT_DNS_RESTORED,		/* a DNS proxy's answer read as coming from the resolver */
	MW_STAT_DNS_ERROR,		/* no socket storage: the DNS query refused */
	MW_STAT_ACCEL_LAGGED,		/* an accelerated socket's peer fell behind: TCP for a while */
	MW_STAT_ACCEL_BULK,		/* a bulk sender left acceleration (TCP, out of the socket map) */
	MW_STAT_ACCEL_SKIPPED_SHORT,	/* a mesh hop not accelerated: its destination's connections are short */
	MW_STAT_MAX,
};

/* mw_event.hook */
enum mw_hook {
	MW_HOOK_CONNECT4 = 1,
	MW_HOOK_SOCKOPS,
	MW_HOOK_GETSOCKOPT,
	MW_HOOK_TC_INGRESS,
	MW_HOOK_TC_EGRESS,
	MW_HOOK_CONNECT6,		/* connect6 (v4-mapped or native IPv6) */
	MW_HOOK_SENDMSG4,		/* sendmsg4 (AF_INET6 sockets to v4-mapped addresses too) */
	MW_HOOK_RECVMSG4,		/* recvmsg4 */
	MW_HOOK_SENDMSG6,		/* sendmsg6 (native IPv6 or v4-mapped) */
	MW_HOOK_RECVMSG6,		/* recvmsg6 (native IPv6 or v4-mapped) */
	MW_HOOK_MAX,
};

/* mw_event.decision: what the hook did (the loader prints the names). */
enum mw_decision {
	MW_DEC_CONNECT_REDIRECTED = 1,	/* outbound connect -> the pod's sidecar */
	MW_DEC_CONNECT_INBOUND,		/* sidecar -> a meshed pod here: its inbound sidecar */
	MW_DEC_CONNECT_EXCLUDED,	/* loopback, excluded port or CIDR: direct */
	MW_DEC_CONNECT_REFUSED,		/* no socket storage: connect() refused (EPERM) */
	MW_DEC_SOCKOPS_PUBLISHED,	/* established: original destination -> mw_orig_tuple4 */
	MW_DEC_SOCKOPT_ANSWERED,	/* SO_ORIGINAL_DST answered to the sidecar */
	MW_DEC_TC_REDIRECTED,		/* inbound SYN -> the sidecar's inbound port */
	MW_DEC_TC_EXCLUDED,		/* inbound SYN to an excluded port: direct */
	MW_DEC_TC_NO_FLOW,		/* inbound SYN dropped: mw_flow4 full or failing */
	MW_DEC_TC_REWRITE_FAILED,	/* packet dropped: its rewrite failed */
	MW_DEC_TC_FLOW_CLOSED,		/* redirected flow over (FINs acknowledged, or RST) */
	MW_DEC_TC_MALFORMED,		/* malformed IPv4 packet, passed untouched */
	MW_DEC_CONNECT6_REFUSED,	/* native IPv6 connect() refused (interception.ipv6) */
	MW_DEC_TC6_DROPPED,		/* IPv6 SYN to the pod dropped (interception.ipv6) */
	MW_DEC_LOOP_REFUSED,		/* straight to a sidecar's capture port: refused / reset */
	MW_DEC_DNS_REDIRECTED,		/* DNS to port 53 -> the pod's DNS proxy ([dns] capture) */
	MW_DEC_DNS_RESTORED,		/* the proxy's answer: source restored to the resolver */
	MW_DEC_DNS_REFUSED,		/* DNS query refused: no socket storage */
	MW_DEC_MAX,
};

/*
 * One decision, as the trace ring buffer mw_events carries it (bpf.trace),
 * one layout for both families: ip6 0, each address is its first word (the
 * others 0); ip6 1, four words of an IPv6 address. Addresses are in network
 * order, ports in host order; a field the hook cannot know is 0. For a
 * redirection, dst is where the connection was going and to is where it
 * goes instead.
 */
struct mw_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 netns_cookie;	/* 0 at tc (no cookie there on older kernels) */
	__u32 src_ip[4];
	__u32 dst_ip[4];
	__u32 to_ip[4];
	__u16 src_port;
	__u16 dst_port;
	__u16 to_port;
	__u8  hook;		/* enum mw_hook */
	__u8  decision;		/* enum mw_decision */
	__u32 pid;		/* thread group of the caller (cgroup hooks), else 0 */
	__u32 uid;		/* the UID the hook decided by (mw_decision_uid:
				   the socket's owner, for UDP the caller's);
				   the caller's for getsockopt and recvmsg; else 0 */
	__u8  ip6;		/* 1: the addresses are IPv6 */
	__u8  pad[7];
};

#endif /* MESHWIRE_STRUCTS_H */
