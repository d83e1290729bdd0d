// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops (bpf/bpf_sockops.c), the real source compiled for the host, run
 * on a table of socket events: publishing a redirected connection's
 * original destination, binding it to the sidecar's accepted socket (from
 * mw_orig_tuple4, or from tc's mw_flow4), forgetting it at close, and
 * acceleration's entries in mw_accel_state and mw_sock_hash (v4-mapped
 * sockets by their IPv4 key, full maps, a bulk sender leaving at an ACK), and
 * learning short connections (mw_accel_hints: a connecting end kept out by a
 * fresh hint, its FIN's report). Linux 6.18
 * answers BPF_PROG_TEST_RUN for sock_ops programs with ENOTSUPP.
 */
#define MW_CFG_CONST
#include "../bpf_sockops.c"
#include "datapath.h"

#include <stdio.h>

#define FLOW_PORT	8080		/* the port a remote peer dialled (mw_flow4) */

/* Map entries about this connection, before and after the event. */
enum {
	TUPLE		= 1 << 0,	/* mw_orig_tuple4 holds it (ORIG_IP:ORIG_PORT) */
	FLOW		= 1 << 1,	/* mw_flow4 holds it (FLOW_PORT) */
	OWN_ACCEL	= 1 << 2,	/* mw_accel_state holds this socket */
	PEER_ACCEL	= 1 << 3,	/* mw_accel_state holds its peer */
	SOCKHASH	= 1 << 4,	/* mw_sock_hash holds this socket */
	NO_PSOCK	= 1 << 5,	/* with OWN_ACCEL after: its state's psock address is 0 */
};

#define LEFT		(MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE)

enum family { INET, INET6_MAPPED, INET6 };

/* A map at its capacity (mw_test_map_limit: 0 entries). */
enum full { FULL_NONE, FULL_STATE, FULL_SOCKS };

struct sockops_case {
	const char *what;
	int accel;
	__u32 op;
	__u32 state;		/* args[1] of BPF_SOCK_OPS_STATE_CB */
	__u32 old_state;	/* its args[0] (0: none given) */
	enum family family;
	__u64 netns;
	const char *local;
	__u16 lport;
	const char *remote;
	__u16 rport;
	__u16 mark;		/* the socket's mw_orig_sk flags before (ORIG_IP:ORIG_PORT) */
	__u32 owner;		/* the socket's owner (sk_uid; 0: root, an app) */
	__u32 pod_uid;		/* the pod's sidecar UID in mw_pod_uid (0: none, sidecar.uid) */
	int not_tcp;		/* bpf_skc_to_tcp_sock answers NULL: no owner, no psock */
	__u32 before;
	__u32 own_flags;	/* its mw_accel_state flags, with OWN_ACCEL */
	__u32 cb_before;	/* the callbacks it asked for before */
	int no_storage;
	enum full full;
	/* what the hook must leave */
	__u16 want_mark;
	const char *want_ip;	/* and its address (NULL: ORIG_IP:ORIG_PORT) */
	__u16 want_port;
	__u32 after;
	__u32 want_own_flags;
	int want_cb;		/* asked for state callbacks */
	int check_cb;		/* with cb_after: the callbacks it asks for after (none asked: cb_before) */
	__u32 cb_after;
	__u32 stats;
	enum mw_decision decision;
	/* learning short connections (mw_accel_hints) */
	int always;		/* short_connections = "accelerate" */
	__u32 own_msgs;		/* its mw_accel_state msgs before, with OWN_ACCEL */
	int hint;		/* a hint for the hop's destination before (HINT_*) */
	__u32 hint_score;
	__u64 hint_age_ms;	/* its last short report this long before the event */
	int want_hint;		/* a hint for the destination after */
	__u32 want_score;
	int want_now;		/* its last short report is the event's time (else as before) */
};

/*
 * HINT_REMOTE: at the hop's own remote address; HINT_APP: an app's hop's,
 * at ORIG_IP:ORIG_PORT (MW_ACCEL_HINT_F_ORIG), whatever the case's hop is.
 */
enum { HINT_NONE, HINT_DEST, HINT_REMOTE, HINT_APP };
#define NOW_NS		(10ULL * 1000 * 1000 * 1000)
#define MS		(1000ULL * 1000)
#define LEARN_FIN	.accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_B, \
			.local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT, \
			.mark = MW_ORIG_F_CONNECT, .want_mark = MW_ORIG_F_CONNECT, \
			.before = TUPLE | OWN_ACCEL | SOCKHASH, .cb_before = CB_ACCEL, \
			.want_cb = 1, CB_AFTER(BPF_SOCK_OPS_STATE_CB_FLAG)
#define LEARN_APP	.accel = 1, .op = ACTIVE, .netns = POD_B, .local = "127.0.0.1", .lport = 40000, \
			.remote = "127.0.0.1", .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT, \
			.want_mark = MW_ORIG_F_CONNECT

static const struct sockops_case cases[] = {
	/* the app's side: publish at established */
	{ "an app's redirected socket publishes where it was going", .op = ACTIVE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT, .want_mark = MW_ORIG_F_CONNECT,
	  .after = TUPLE, .want_cb = 1, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "a socket that was not redirected publishes nothing", .op = ACTIVE, .netns = POD_A,
	  .local = "10.1.0.10", .lport = 40000, .remote = "10.2.0.7", .rport = 80 },
	{ "the sidecar's accepted socket publishes nothing", .op = ACTIVE, .netns = POD_A,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .mark = MW_ORIG_F_ACCEPTED, .want_mark = MW_ORIG_F_ACCEPTED },
	{ "a sidecar's inbound hop to another pod publishes without a netns scope",
	  .op = ACTIVE, .netns = POD_A, .local = POD_A_IP, .lport = 41000, .remote = POD_B_IP,
	  .rport = IN_PORT, .mark = MW_ORIG_F_CONNECT, .want_mark = MW_ORIG_F_CONNECT,
	  .after = TUPLE, .want_cb = 1, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "a dual-stack app's v4-mapped socket publishes", .op = ACTIVE,
	  .family = INET6_MAPPED, .netns = POD_A, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT,
	  .want_mark = MW_ORIG_F_CONNECT, .after = TUPLE, .want_cb = 1,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED), .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "a native IPv6 socket is not looked at", .op = ACTIVE, .family = INET6,
	  .netns = POD_A, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT, .want_mark = MW_ORIG_F_CONNECT },

	{ "an app's DNS over TCP, sent to the DNS proxy, publishes where it was going",
	  .op = ACTIVE, .netns = POD_A, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = DNS_PORT, .mark = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .want_mark = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS, .after = TUPLE, .want_cb = 1,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED), .decision = MW_DEC_SOCKOPS_PUBLISHED },

	/* the sidecar's side: bind at accept */
	{ "the DNS proxy's accepted socket gets the resolver", .op = PASSIVE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = DNS_PORT, .remote = "127.0.0.1",
	  .rport = 40000, .before = TUPLE, .want_mark = MW_ORIG_F_ACCEPTED,
	  .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "the sidecar's accepted socket gets the original destination", .op = PASSIVE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = OUT_PORT, .remote = "127.0.0.1",
	  .rport = 40000, .before = TUPLE, .want_mark = MW_ORIG_F_ACCEPTED,
	  .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "an accepted socket nobody published gets nothing", .op = PASSIVE, .netns = POD_A,
	  .local = "127.0.0.1", .lport = OUT_PORT, .remote = "127.0.0.1", .rport = 40000 },
	{ "an app's own listener is not the sidecar's", .op = PASSIVE, .netns = POD_A,
	  .local = "127.0.0.1", .lport = 8080, .remote = "127.0.0.1", .rport = 40000,
	  .before = TUPLE, .after = TUPLE },
	{ "the inbound port gets a same-node hop's original destination", .op = PASSIVE,
	  .netns = POD_B, .local = POD_B_IP, .lport = IN_PORT, .remote = POD_A_IP,
	  .rport = 41000, .before = TUPLE, .want_mark = MW_ORIG_F_ACCEPTED,
	  .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "the inbound port gets the port a remote peer dialled, from tc", .op = PASSIVE,
	  .netns = POD_B, .local = POD_B_IP, .lport = IN_PORT, .remote = "10.2.0.7",
	  .rport = 50000, .before = FLOW, .want_mark = MW_ORIG_F_ACCEPTED, .want_ip = POD_B_IP,
	  .want_port = FLOW_PORT, .after = FLOW, .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "the outbound port does not look at tc's flows", .op = PASSIVE, .netns = POD_B,
	  .local = POD_B_IP, .lport = OUT_PORT, .remote = "10.2.0.7", .rport = 50000,
	  .before = FLOW, .after = FLOW },
	{ "the inbound port with neither entry gets nothing", .op = PASSIVE, .netns = POD_B,
	  .local = POD_B_IP, .lport = IN_PORT, .remote = "10.2.0.7", .rport = 50000 },
	{ "no socket storage: counted, the published entry stays", .op = PASSIVE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = OUT_PORT, .remote = "127.0.0.1",
	  .rport = 40000, .before = TUPLE, .no_storage = 1, .after = TUPLE,
	  .stats = STAT(MW_STAT_SOCKOPS_ERROR) },

	/* close */
	{ "an app socket closing forgets what no sidecar took", .op = STATE,
	  .state = BPF_TCP_CLOSE, .netns = POD_A, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT,
	  .want_mark = MW_ORIG_F_CONNECT, .before = TUPLE, .stats = STAT(MW_STAT_SOCKOPS_CLOSED) },
	{ "a socket that never published (an accelerated sidecar's) does not touch the tuples "
	  "at its close", .accel = 1, .op = STATE, .state = BPF_TCP_CLOSE, .netns = POD_A,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .mark = MW_ORIG_F_ACCEPTED, .want_mark = MW_ORIG_F_ACCEPTED, .before = TUPLE,
	  .after = TUPLE },
	{ "nor does one without socket storage", .op = STATE, .state = BPF_TCP_CLOSE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .before = TUPLE, .after = TUPLE },
	{ "a close with nothing published counts nothing", .op = STATE, .state = BPF_TCP_CLOSE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT },
	{ "a FIN is not a close", .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_A,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .before = TUPLE, .after = TUPLE },

	/* acceleration: which sockets enter the socket map */
	{ "accel: an app to its sidecar enters the socket map", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED) ,
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: a redirected socket is published and enters", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT, .want_mark = MW_ORIG_F_CONNECT,
	  .after = TUPLE | OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED ,
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: a pod without acceleration stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_A, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT },
	{ "accel off on the node: nobody enters", .op = ACTIVE, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT },
	{ "accel: a connection leaving the node is not a mesh hop", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = POD_B_IP, .lport = 40000, .remote = ORIG_IP,
	  .rport = ORIG_PORT },
	{ "accel: two meshed pods' sidecars on the inbound port enter", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP, .lport = 41000, .remote = POD_A_IP,
	  .rport = IN_PORT, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED) ,
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: the inbound port of an address not meshed stays out", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP, .lport = 41000, .remote = "10.2.0.7",
	  .rport = IN_PORT },
	{ "accel: a meshed pod's inbound port dialled from an address not meshed stays out",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = "10.2.0.7", .lport = 41000,
	  .remote = POD_A_IP, .rport = IN_PORT },
	/* a sidecar's delivery to its own app: told by the socket's owner, no storage */
	{ "accel: a sidecar's delivery to its app on its pod's address enters", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP, .lport = 42000, .remote = POD_B_IP,
	  .rport = 8080, .owner = SIDECAR_UID, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED), .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: a sidecar's delivery to its app over loopback enters", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 42000, .remote = "127.0.0.1",
	  .rport = 8080, .owner = SIDECAR_UID, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED), .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: a dual-stack sidecar's delivery over ::ffff:127.0.0.1 enters by its IPv4 key",
	  .accel = 1, .op = ACTIVE, .family = INET6_MAPPED, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 42000, .remote = "127.0.0.1", .rport = 8080,
	  .owner = SIDECAR_UID, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED), .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: an app's own loopback connection stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 42000, .remote = "127.0.0.1",
	  .rport = 8080, .owner = APP_UID },
	{ "accel: a root-owned app's loopback connection stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 42000, .remote = "127.0.0.1",
	  .rport = 8080 },
	{ "accel: a dual-stack app's own ::ffff:127.0.0.1 connection stays out", .accel = 1,
	  .op = ACTIVE, .family = INET6_MAPPED, .netns = POD_B, .local = "127.0.0.1",
	  .lport = 42000, .remote = "127.0.0.1", .rport = 8080, .owner = APP_UID },
	{ "accel: an app's connection to its own pod's address (an excluded port) stays out",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = POD_B_IP, .lport = 42000,
	  .remote = POD_B_IP, .rport = 8080, .owner = APP_UID },
	{ "accel: the sidecar to another meshed pod's port it may dial direct stays out",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = POD_B_IP, .lport = 42000,
	  .remote = POD_A_IP, .rport = 8080, .owner = SIDECAR_UID },
	{ "accel: the sidecar to an address not meshed stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = POD_B_IP, .lport = 42000, .remote = "10.2.0.7", .rport = 8080,
	  .owner = SIDECAR_UID },
	{ "accel: the sidecar to its own inbound port over loopback is no delivery", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = "127.0.0.1", .lport = 42000,
	  .remote = "127.0.0.1", .rport = IN_PORT, .owner = SIDECAR_UID },
	{ "accel: a socket whose owner cannot be read stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 42000, .remote = "127.0.0.1",
	  .rport = 8080, .owner = SIDECAR_UID, .not_tcp = 1 },
	{ "accel: in a pod with a user namespace the sidecar is its mapped UID: enters",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = "127.0.0.1", .lport = 42000,
	  .remote = "127.0.0.1", .rport = 8080, .pod_uid = 101500, .owner = 101500,
	  .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: ... and sidecar.uid unmapped there is an app: stays out", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = "127.0.0.1", .lport = 42000,
	  .remote = "127.0.0.1", .rport = 8080, .pod_uid = 101500, .owner = SIDECAR_UID },
	{ "accel off: a sidecar's delivery stays out", .op = ACTIVE, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 42000, .remote = "127.0.0.1", .rport = 8080,
	  .owner = SIDECAR_UID },
	{ "accel: a sidecar's delivery in a pod without acceleration stays out", .accel = 1,
	  .op = ACTIVE, .netns = POD_A, .local = "127.0.0.1", .lport = 42000,
	  .remote = "127.0.0.1", .rport = 8080, .owner = SIDECAR_UID },
	{ "accel: an accepted end follows its peer in", .accel = 1, .op = PASSIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = OUT_PORT, .remote = "127.0.0.1",
	  .rport = 40000, .before = PEER_ACCEL, .after = PEER_ACCEL | OWN_ACCEL | SOCKHASH,
	  .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED) },
	{ "accel: an accepted end whose peer is out stays out", .accel = 1, .op = PASSIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = OUT_PORT, .remote = "127.0.0.1",
	  .rport = 40000 },
	{ "accel: a dual-stack app's v4-mapped socket enters mw_sock_hash by its IPv4 key",
	  .accel = 1, .op = ACTIVE, .family = INET6_MAPPED, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED) ,
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: a v4-mapped accepted end follows its IPv4 peer in", .accel = 1,
	  .op = PASSIVE, .family = INET6_MAPPED, .netns = POD_B, .local = "127.0.0.1",
	  .lport = OUT_PORT, .remote = "127.0.0.1", .rport = 40000, .before = PEER_ACCEL,
	  .after = PEER_ACCEL | OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED) },
	{ "accel: a v4-mapped socket's FIN is handled by its IPv4 key", .accel = 1,
	  .op = STATE, .state = BPF_TCP_FIN_WAIT1, .family = INET6_MAPPED, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .before = OWN_ACCEL | SOCKHASH, .cb_before = CB_ACCEL, CB_AFTER(0) },
	{ "accel: mw_accel_state full: not accelerated, counted", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .full = FULL_STATE, .stats = STAT(MW_STAT_ACCEL_ERROR) },
	{ "accel: mw_sock_hash full: not accelerated, its state taken back, counted",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .full = FULL_SOCKS,
	  .stats = STAT(MW_STAT_ACCEL_ERROR) },

	/* acceleration: FIN and close */
	{ "accel: at its FIN a socket nothing was sent to leaves the socket map, its state goes, "
	  "no more callbacks", .accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .before = OWN_ACCEL | PEER_ACCEL | SOCKHASH, .cb_before = CB_ACCEL, .after = PEER_ACCEL,
	  CB_AFTER(0) },
	{ "accel: at its FIN a socket that was sent to stays in the socket map, its state goes",
	  .accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_B, .local = "127.0.0.1",
	  .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .own_flags = MW_ACCEL_RX, .cb_before = CB_ACCEL, .after = SOCKHASH, CB_AFTER(0) },
	{ "accel: its FIN after the peer's (LAST_ACK) is its FIN too", .accel = 1, .op = STATE,
	  .state = BPF_TCP_LAST_ACK, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, CB_AFTER(0) },
	{ "accel: at its FIN an app's socket that published keeps its close callback (to forget)",
	  .accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_B, .local = "127.0.0.1",
	  .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT, .mark = MW_ORIG_F_CONNECT,
	  .want_mark = MW_ORIG_F_CONNECT, .before = TUPLE | OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, .after = TUPLE, .want_cb = 1, CB_AFTER(BPF_SOCK_OPS_STATE_CB_FLAG) },
	{ "accel: at close its state goes", .accel = 1, .op = STATE, .state = BPF_TCP_CLOSE,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .before = OWN_ACCEL | PEER_ACCEL, .after = PEER_ACCEL },
	{ "accel: a reset's close (from ESTABLISHED) deletes its state", .accel = 1, .op = STATE,
	  .state = BPF_TCP_CLOSE, .old_state = BPF_TCP_ESTABLISHED, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .before = OWN_ACCEL | PEER_ACCEL, .after = PEER_ACCEL },
	{ "accel: a close after its own FIN (LAST_ACK) deletes nothing: its state went at that FIN",
	  .accel = 1, .op = STATE, .state = BPF_TCP_CLOSE, .old_state = BPF_TCP_LAST_ACK,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .before = OWN_ACCEL | PEER_ACCEL, .after = OWN_ACCEL | PEER_ACCEL },
	{ "accel: ... and so from FIN_WAIT2 (after a FIN_WAIT1 it was called for)", .accel = 1,
	  .op = STATE, .state = BPF_TCP_CLOSE, .old_state = BPF_TCP_FIN_WAIT2, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .before = OWN_ACCEL, .after = OWN_ACCEL },
	{ "accel: other state changes leave it alone", .accel = 1, .op = STATE,
	  .state = BPF_TCP_CLOSE_WAIT, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, .after = OWN_ACCEL | SOCKHASH, CB_AFTER(CB_ACCEL) },
	/* acceleration: learning short connections (short_connections = "learn", the default) */
	{ "learn: an app's hop whose destination's last 4 connections were short, the last 100 ms "
	  "ago, stays out (published, counted)", LEARN_APP, .hint = HINT_DEST, .hint_score = 4,
	  .hint_age_ms = 100, .want_hint = 1, .want_score = 4, .after = TUPLE, .want_cb = 1,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SKIPPED_SHORT),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "learn: the same hint 200 ms old has expired: the hop enters (a probe)", LEARN_APP,
	  .hint = HINT_DEST, .hint_score = 4, .hint_age_ms = 200, .want_hint = 1, .want_score = 4,
	  .after = TUPLE | OWN_ACCEL | SOCKHASH, .want_own_flags = MW_ACCEL_CONNECT,
	  .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "learn: 3 short ones in a row are not enough: the hop enters", LEARN_APP,
	  .hint = HINT_DEST, .hint_score = 3, .hint_age_ms = 1, .want_hint = 1, .want_score = 3,
	  .after = TUPLE | OWN_ACCEL | SOCKHASH, .want_own_flags = MW_ACCEL_CONNECT,
	  .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "learn: an app's hop learns under its original destination, not its sidecar's address",
	  LEARN_APP, .hint = HINT_REMOTE, .hint_score = 4, .hint_age_ms = 1,
	  .after = TUPLE | OWN_ACCEL | SOCKHASH, .want_own_flags = MW_ACCEL_CONNECT,
	  .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "learn: a sidecar's own connection to an app's original destination (no mesh hop) is not "
	  "kept out by the app hop's fresh hint there, nor counted", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = POD_B_IP, .lport = 41000, .remote = ORIG_IP, .rport = ORIG_PORT,
	  .hint = HINT_APP, .hint_score = 4, .hint_age_ms = 1 },
	{ "learn: two sidecars' hop learns under its remote address: a fresh hint keeps it out",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = POD_B_IP, .lport = 41000,
	  .remote = POD_A_IP, .rport = IN_PORT, .hint = HINT_DEST, .hint_score = 4, .hint_age_ms = 0,
	  .want_hint = 1, .want_score = 4, .stats = STAT(MW_STAT_ACCEL_SKIPPED_SHORT) },
	{ "accelerate: a fresh hint is not looked at: the hop enters, with no MW_ACCEL_CONNECT",
	  LEARN_APP, .always = 1, .hint = HINT_DEST, .hint_score = 4, .hint_age_ms = 1,
	  .want_hint = 1, .want_score = 4, .after = TUPLE | OWN_ACCEL | SOCKHASH,
	  .want_cb = CB_ACCEL, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "learn: a connecting end's FIN after 4 messages reports short: the run grows, its time "
	  "is now", LEARN_FIN, .own_flags = MW_ACCEL_CONNECT, .own_msgs = 4, .hint = HINT_DEST,
	  .hint_score = 2, .hint_age_ms = 5000, .want_hint = 1, .want_score = 3, .want_now = 1, .after = TUPLE },
	{ "learn: the run saturates at 4", LEARN_FIN, .own_flags = MW_ACCEL_CONNECT, .own_msgs = 1,
	  .hint = HINT_DEST, .hint_score = 4, .hint_age_ms = 300, .want_hint = 1, .want_score = 4,
	  .want_now = 1, .after = TUPLE },
	{ "learn: a destination's first short report makes its hint (run 1)", LEARN_FIN,
	  .own_flags = MW_ACCEL_CONNECT, .own_msgs = 2, .want_hint = 1, .want_score = 1, .want_now = 1, .after = TUPLE },
	{ "learn: a FIN after 5 messages reports long: the run is over", LEARN_FIN,
	  .own_flags = MW_ACCEL_CONNECT, .own_msgs = 5, .hint = HINT_DEST, .hint_score = 4,
	  .hint_age_ms = 10, .want_hint = 1, .want_score = 0, .after = TUPLE },
	{ "learn: a long report for a destination without a hint makes none", LEARN_FIN,
	  .own_flags = MW_ACCEL_CONNECT, .own_msgs = 5, .after = TUPLE },
	{ "learn: a socket whose peer fell behind (MW_ACCEL_LAG) reports long, whatever its count",
	  LEARN_FIN, .own_flags = MW_ACCEL_CONNECT | MW_ACCEL_LAG | MW_ACCEL_RX, .own_msgs = 1,
	  .hint = HINT_DEST, .hint_score = 4, .hint_age_ms = 10, .want_hint = 1, .want_score = 0,
	  .after = TUPLE | SOCKHASH },
	{ "learn: an accepted end's FIN (no MW_ACCEL_CONNECT) reports nothing", LEARN_FIN,
	  .own_msgs = 1, .hint = HINT_DEST, .hint_score = 2, .hint_age_ms = 10, .want_hint = 1,
	  .want_score = 2, .after = TUPLE },
	{ "accelerate: a FIN reports nothing", LEARN_FIN, .always = 1,
	  .own_flags = MW_ACCEL_CONNECT, .own_msgs = 1, .after = TUPLE },
	{ "learn: a close without a FIN (a reset) reports nothing", .accel = 1, .op = STATE,
	  .state = BPF_TCP_CLOSE, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .before = OWN_ACCEL,
	  .own_flags = MW_ACCEL_CONNECT, .own_msgs = 1 },

	/* acceleration: a bulk sender leaves at an ACK of its TCP data */
	{ "accel: an ACK of a bulk sender's TCP data (MW_ACCEL_LEAVE): it leaves the socket "
	  "map, its psock address goes, no more RTT callbacks", .accel = 1, .op = RTT,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH, .own_flags = LEFT,
	  .cb_before = CB_ACCEL, .after = OWN_ACCEL | NO_PSOCK, .want_own_flags = LEFT,
	  .want_cb = BPF_SOCK_OPS_STATE_CB_FLAG },
	{ "accel: an ACK of a socket that is not leaving (lagging, sent to) changes nothing",
	  .accel = 1, .op = RTT, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .own_flags = MW_ACCEL_RX | MW_ACCEL_LAG, .cb_before = CB_ACCEL,
	  .after = OWN_ACCEL | SOCKHASH, .want_own_flags = MW_ACCEL_RX | MW_ACCEL_LAG },
	{ "accel: an ACK of a socket without state: no more RTT callbacks, nothing else",
	  .accel = 1, .op = RTT, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .before = SOCKHASH, .cb_before = CB_ACCEL,
	  .after = SOCKHASH, .want_cb = BPF_SOCK_OPS_STATE_CB_FLAG },
	{ "accel off: an RTT callback leaves everything alone", .op = RTT, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .before = OWN_ACCEL | SOCKHASH, .own_flags = LEFT, .cb_before = CB_ACCEL,
	  .after = OWN_ACCEL | SOCKHASH, .want_own_flags = LEFT },
	{ "accel off: a FIN leaves the socket map alone", .op = STATE,
	  .state = BPF_TCP_FIN_WAIT1, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, .after = OWN_ACCEL | SOCKHASH, CB_AFTER(CB_ACCEL) },
};

static int loopback(const char *ip)
{
	return (bpf_ntohl(mw_test_ip4(ip)) >> 24) == 127;
}

/* The connection as mw_orig_tuple4 keys it: the app is the client. */
static struct mw_tuple4 tuple_key(const struct sockops_case *c)
{
	int accepted = c->op == PASSIVE;
	const char *client = accepted ? c->remote : c->local;
	const char *server = accepted ? c->local : c->remote;
	struct mw_tuple4 k = {
		.client_ip4 = mw_test_ip4(client),
		.server_ip4 = mw_test_ip4(server),
		.client_port = accepted ? c->rport : c->lport,
		.server_port = accepted ? c->lport : c->rport,
		/* Every pod has its own 127.0.0.1. */
		.netns_cookie = loopback(server) ? c->netns : 0,
	};
	return k;
}

/* A socket as mw_sock_hash and mw_accel_state key it, from its own side. */
static struct mw_sock_key sock_key(const struct sockops_case *c, int peer)
{
	struct mw_sock_key k = {
		.local_ip4 = mw_test_ip4(peer ? c->remote : c->local),
		.remote_ip4 = mw_test_ip4(peer ? c->local : c->remote),
		.local_port = peer ? c->rport : c->lport,
		.remote_port = peer ? c->lport : c->rport,
		.netns_cookie = loopback(c->remote) ? c->netns : 0,
	};
	return k;
}

/* The hint key of the case's hop (HINT_DEST: as sockops computes it), or the one `which` names. */
static struct mw_accel_hint_key hint_key(const struct sockops_case *c, int which)
{
	struct mw_accel_hint_key k = { .netns_cookie = c->netns, .port = c->rport };

	k.ip[0] = mw_test_ip4(c->remote);
	if (which == HINT_APP || (which != HINT_REMOTE && (c->mark & MW_ORIG_F_CONNECT) &&
				  c->rport == OUT_PORT && loopback(c->remote))) {
		k.ip[0] = mw_test_ip4(ORIG_IP);
		k.port = ORIG_PORT;
		k.flags = MW_ACCEL_HINT_F_ORIG;
	}
	return k;
}

static struct mw_flow4_key flow_key(const struct sockops_case *c)
{
	struct mw_flow4_key k = {
		.remote_ip4 = mw_test_ip4(c->remote),
		.local_ip4 = mw_test_ip4(c->local),
		.remote_port = bpf_htons(c->rport),
	};
	return k;
}

/*
 * The socket's tcp_sock as sockops reads it: sk_user_data is its psock with
 * the kernel's flag bits (SK_USER_DATA_PSOCK | _BPF here) in the low ones.
 * A psock recorded before the event: OLD_PSOCK.
 */
#define PSOCK		0x7f0012345600ULL
#define OLD_PSOCK	0x7f00abcdef00ULL
static union mw_test_tcp test_tcp;

static void node(const struct sockops_case *c)
{
	struct mw_orig4 orig = {
		.ip4 = mw_test_ip4(ORIG_IP),
		.port = bpf_htons(ORIG_PORT),
		.flags = MW_ORIG_F_CONNECT,
	};
	struct mw_flow4 flow = { .orig_port = bpf_htons(FLOW_PORT) };
	/* A socket accelerated before the event has its psock recorded: OLD_PSOCK. */
	struct mw_accel_state own = { .flags = c->own_flags, .psock = OLD_PSOCK, .msgs = c->own_msgs },
			      peer = {};
	struct mw_accel_hint hint = { .score = c->hint_score, .last_short_ns = NOW_NS - c->hint_age_ms * MS };
	struct mw_accel_hint_key hk = hint_key(c, c->hint);
	struct mw_tuple4 tk = tuple_key(c);
	struct mw_flow4_key fk = flow_key(c);
	struct mw_sock_key ok = sock_key(c, 0), pk = sock_key(c, 1);
	__u64 sk = 1;

	mw_test_pods();
	if (c->before & TUPLE)
		bpf_map_update_elem(&mw_orig_tuple4, &tk, &orig, BPF_ANY);
	if (c->before & FLOW)
		bpf_map_update_elem(&mw_flow4, &fk, &flow, BPF_ANY);
	if (c->before & OWN_ACCEL)
		bpf_map_update_elem(&mw_accel_state, &ok, &own, BPF_ANY);
	if (c->before & PEER_ACCEL)
		bpf_map_update_elem(&mw_accel_state, &pk, &peer, BPF_ANY);
	if (c->before & SOCKHASH)
		bpf_map_update_elem(&mw_sock_hash, &ok, &sk, BPF_ANY);
	if (c->hint)
		bpf_map_update_elem(&mw_accel_hints, &hk, &hint, BPF_ANY);
	if (c->pod_uid)
		bpf_map_update_elem(&mw_pod_uid, &c->netns, &c->pod_uid, BPF_ANY);
}

static void run_case(struct mw_test_run *run, const struct sockops_case *c)
{
	struct bpf_sock sk = { .family = c->family == INET ? MW_AF_INET : MW_AF_INET6 };
	struct bpf_sock_ops ctx = {
		.op = c->op,
		.family = sk.family,
		.local_ip4 = mw_test_ip4(c->local),
		.remote_ip4 = mw_test_ip4(c->remote),
		.local_port = c->lport,
		.remote_port = bpf_htonl(c->rport),
		.bpf_sock_ops_cb_flags = c->cb_before,
		.sk = &sk,
	};
	struct mw_tuple4 tk = tuple_key(c);
	struct mw_flow4_key fk = flow_key(c);
	struct mw_sock_key ok = sock_key(c, 0), pk = sock_key(c, 1);
	struct mw_accel_state *own;
	struct mw_orig4 *mark;
	char ip6[64];
	int ret;

	node(c);
	if (c->full)
		mw_test_map_limit(c->full == FULL_STATE ? (void *)&mw_accel_state :
				  (void *)&mw_sock_hash, 0);
	test_tcp.tcp.inet_conn.icsk_inet.sk.sk_user_data = (void *)(PSOCK | 6);
	test_tcp.owner.sk_uid.val = c->owner;
	mw_test_tcp_sock = c->not_tcp ? NULL : &test_tcp;
	mw_test_settings(c->accel, 1, SIDECAR_UID);
	mw_cfg.accel_short = c->always ? MW_ACCEL_SHORT_ACCELERATE : MW_ACCEL_SHORT_LEARN;
	mw_test_ktime_ns = NOW_NS;
	mw_test_task.netns_cookie = c->netns;
	mw_test_no_sk_storage = c->no_storage;
	ctx.args[0] = c->old_state;
	ctx.args[1] = c->state;
	if (c->family == INET6_MAPPED) {
		snprintf(ip6, sizeof(ip6), "::ffff:%s", c->remote);
		mw_test_ip6(ip6, ctx.remote_ip6);
	} else if (c->family == INET6) {
		mw_test_ip6("2001:db8::7", ctx.remote_ip6);
	}
	if (c->mark)
		mw_test_mark(&sk, c->mark);

	ret = mw_sockops(&ctx);

	MW_EXPECT_EQ(run, ret, 1, "return value");
	if (c->check_cb)
		MW_EXPECT_EQ(run, ctx.bpf_sock_ops_cb_flags, c->cb_after, "the callbacks asked for after");
	mark = mw_test_sk_storage(&mw_orig_sk, &sk);
	MW_EXPECT_EQ(run, mark ? mark->flags : 0, c->want_mark, "mw_orig_sk flags");
	if (mark && c->want_mark) {
		MW_EXPECT_EQ(run, mark->ip4, mw_test_ip4(c->want_ip ? c->want_ip : ORIG_IP),
			     "mw_orig_sk address");
		MW_EXPECT_EQ(run, bpf_ntohs(mark->port), c->want_ip ? c->want_port : ORIG_PORT,
			     "mw_orig_sk port");
	}

	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_orig_tuple4, &tk), !!(c->after & TUPLE),
		     "mw_orig_tuple4 holds the connection");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_orig_tuple4), !!(c->after & TUPLE),
		     "mw_orig_tuple4 entries");
	if (c->after & TUPLE) {
		struct mw_orig4 *o = bpf_map_lookup_elem(&mw_orig_tuple4, &tk);

		if (o) {
			MW_EXPECT_EQ(run, o->ip4, mw_test_ip4(ORIG_IP), "published address");
			MW_EXPECT_EQ(run, bpf_ntohs(o->port), ORIG_PORT, "published port");
		}
	}
	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_flow4, &fk), !!(c->after & FLOW),
		     "mw_flow4 holds the flow");
	own = bpf_map_lookup_elem(&mw_accel_state, &ok);
	MW_EXPECT_EQ(run, !!own, !!(c->after & OWN_ACCEL), "mw_accel_state holds the socket");
	if (own) {
		MW_EXPECT_EQ(run, own->flags, c->want_own_flags, "its mw_accel_state flags");
		/* Recorded in its state, the flag bits cleared, once it is in the socket map;
		 * 0 once it left the map as a bulk sender (NO_PSOCK). */
		MW_EXPECT_EQ(run, own->psock,
			     (c->after & NO_PSOCK) ? 0 : (c->before & OWN_ACCEL) ? OLD_PSOCK : PSOCK,
			     "its psock address (mw_accel_state.psock)");
	}
	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_accel_state, &pk), !!(c->after & PEER_ACCEL),
		     "mw_accel_state holds the peer");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_accel_state),
		     !!(c->after & OWN_ACCEL) + !!(c->after & PEER_ACCEL), "mw_accel_state entries");
	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_sock_hash, &ok), !!(c->after & SOCKHASH),
		     "mw_sock_hash holds the socket");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_sock_hash), !!(c->after & SOCKHASH),
		     "mw_sock_hash entries");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_sock_hash6) + mw_test_map_count(&mw_accel_state6),
		     0, "the IPv6 acceleration maps untouched");
	{
		int elsewhere = c->hint == HINT_REMOTE || c->hint == HINT_APP;
		struct mw_accel_hint_key hk = hint_key(c, elsewhere ? HINT_DEST : c->hint);
		struct mw_accel_hint *h = bpf_map_lookup_elem(&mw_accel_hints, &hk);

		MW_EXPECT_EQ(run, mw_test_map_count(&mw_accel_hints), !!c->want_hint + elsewhere,
			     "mw_accel_hints entries");
		if (!elsewhere) {
			MW_EXPECT_EQ(run, !!h, !!c->want_hint, "mw_accel_hints holds the destination");
			if (h) {
				MW_EXPECT_EQ(run, h->score, c->want_score, "the hint's run of short reports");
				MW_EXPECT_EQ(run, h->last_short_ns,
					     c->want_now ? NOW_NS : NOW_NS - c->hint_age_ms * MS,
					     "the hint's last short report");
			}
		}
	}
	const struct mw_event *ev = mw_test_expect_sockops_end(run, c->want_cb, c->stats, c->decision);

	if (ev) {
		MW_EXPECT_EQ(run, ev->ip6, 0, "event family (ip6)");
		MW_EXPECT_EQ(run, ev->src_ip[0], mw_test_ip4(c->local), "event source");
		MW_EXPECT_EQ(run, ev->src_port, c->lport, "event source port");
		MW_EXPECT_EQ(run, ev->dst_ip[0], mw_test_ip4(ORIG_IP), "event destination");
		MW_EXPECT_EQ(run, ev->dst_port, ORIG_PORT, "event destination port");
		MW_EXPECT_EQ(run, ev->to_ip[0], mw_test_ip4(c->remote), "event sidecar address");
		MW_EXPECT_EQ(run, ev->to_port, c->rport, "event sidecar port");
	}
}

MW_TEST_MAIN("bpf_sockops.c", cases, run_case)
