// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops (bpf/bpf_sockops.c) for native IPv6 connections steered by connect6
 * (interception.ipv6 = "intercept"), an app's to its sidecar and a sidecar's to
 * another meshed pod's inbound port, and DNS over TCP to the DNS proxy (any
 * interception.ipv6): publishing the original
 * destination in mw_orig_tuple6 at established, binding it (with the
 * accepted socket's flow label) to the sidecar's accepted socket, forgetting
 * it at close; acceleration of the mesh's IPv6 hops (mw_accel_state6 and
 * mw_sock_hash6: which sockets enter, capacity, FIN and close). The real
 * source compiled for the host, as sockops_test.c.
 */
#define MW_CFG_CONST
#include "../bpf_sockops.c"
#include "datapath.h"

#include <string.h>

/* Map entries about this connection, before and after the event. */
enum {
	TUPLE		= 1 << 0,	/* mw_orig_tuple6 holds it (ORIG_IP6:ORIG_PORT) */
	OTHER_POD	= 1 << 1,	/* ...published in another pod's namespace instead */
	FLOW		= 1 << 2,	/* mw_flow6 holds it: tc steered it from REMOTE6:rport (dialled ORIG_PORT) */
	OWN_ACCEL	= 1 << 3,	/* mw_accel_state6 holds this socket */
	PEER_ACCEL	= 1 << 4,	/* mw_accel_state6 holds its peer */
	SOCKHASH	= 1 << 5,	/* mw_sock_hash6 holds this socket */
};

/* A map at its capacity (mw_test_map_limit: 0 entries). */
enum full { FULL_NONE, FULL_STATE, FULL_SOCKS };

#define REMOTE6		"fd00:1::7"	/* a peer on another node */

#define FLOW_LABEL	0xf0012345U	/* the accepted socket's flow_label, host order */

struct sockops6_case {
	const char *what;
	int refuse;		/* interception.ipv6 = "refuse" */
	int accel;		/* acceleration on */
	enum full full;
	__u32 op;
	__u32 state;
	__u64 netns;
	const char *local;
	__u16 lport;
	const char *remote;
	__u16 rport;
	__u16 mark6;		/* the socket's mw_orig6_sk flags before */
	__u32 owner;		/* the socket's owner (sk_uid; 0: root, an app) */
	__u32 before;
	int no_storage;
	int not_tcp6;		/* bpf_skc_to_tcp6_sock answers NULL */
	__u32 own_flags;	/* its mw_accel_state6 flags, with OWN_ACCEL */
	__u32 cb_before;	/* the callbacks it asked for before */
	/* what the hook must leave */
	__u16 want_mark6;
	__u32 want_flowinfo;	/* network order, with MW_ORIG_F_ACCEPTED */
	__u32 after;
	__u32 want_own_flags;
	int want_cb;
	int check_cb;		/* with cb_after: the callbacks it asks for after */
	__u32 cb_after;
	__u32 stats;
	enum mw_decision decision;
};

static const struct sockops6_case cases[] = {
	/* the app's side */
	{ "an app's redirected IPv6 socket publishes where it was going", .op = ACTIVE,
	  .netns = POD_A, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .mark6 = MW_ORIG_F_CONNECT, .want_mark6 = MW_ORIG_F_CONNECT, .after = TUPLE,
	  .want_cb = 1, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "an IPv6 socket that was not redirected publishes nothing", .op = ACTIVE,
	  .netns = POD_A, .local = "fd00:1::2", .lport = 40000, .remote = ORIG_IP6,
	  .rport = 80 },
	{ "DNS over TCP to the DNS proxy is published with interception.ipv6 = refuse too",
	  .refuse = 1, .op = ACTIVE, .netns = POD_A, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = DNS_PORT, .mark6 = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .want_mark6 = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS, .after = TUPLE, .want_cb = 1,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED), .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "the DNS proxy's accepted IPv6 socket gets the resolver (interception.ipv6 = refuse)",
	  .refuse = 1, .op = PASSIVE, .netns = POD_A, .local = "::1", .lport = DNS_PORT,
	  .remote = "::1", .rport = 40000, .before = TUPLE, .want_mark6 = MW_ORIG_F_ACCEPTED,
	  .want_flowinfo = 0x00012345, .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "an IPv6 socket with interception.ipv6 = refuse and no mark publishes nothing",
	  .refuse = 1, .op = ACTIVE, .netns = POD_A, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT },

	/* the sidecar's side */
	{ "the sidecar's accepted IPv6 socket gets the destination and its flow label",
	  .op = PASSIVE, .netns = POD_A, .local = "::1", .lport = OUT_PORT, .remote = "::1",
	  .rport = 40000, .before = TUPLE, .want_mark6 = MW_ORIG_F_ACCEPTED,
	  .want_flowinfo = 0x00012345, .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "a socket that is no tcp6_sock gets flowinfo 0", .op = PASSIVE, .not_tcp6 = 1,
	  .netns = POD_A, .local = "::1", .lport = OUT_PORT, .remote = "::1", .rport = 40000,
	  .before = TUPLE, .want_mark6 = MW_ORIG_F_ACCEPTED,
	  .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "an accepted IPv6 socket nobody published gets nothing", .op = PASSIVE,
	  .netns = POD_A, .local = "::1", .lport = OUT_PORT, .remote = "::1", .rport = 40000 },
	{ "another pod's connection with the same 4-tuple is not this one", .op = PASSIVE,
	  .netns = POD_A, .local = "::1", .lport = OUT_PORT, .remote = "::1", .rport = 40000,
	  .before = OTHER_POD, .after = OTHER_POD },
	{ "an app's own IPv6 listener is not the sidecar's", .op = PASSIVE, .netns = POD_A,
	  .local = "::1", .lport = 8080, .remote = "::1", .rport = 40000, .before = TUPLE,
	  .after = TUPLE },
	{ "no socket storage: counted, the published entry stays", .op = PASSIVE,
	  .netns = POD_A, .local = "::1", .lport = OUT_PORT, .remote = "::1", .rport = 40000,
	  .before = TUPLE, .no_storage = 1, .after = TUPLE,
	  .stats = STAT(MW_STAT_SOCKOPS_ERROR) },

	/* same-node inbound: a sidecar to another meshed pod's inbound port */
	{ "a sidecar's IPv6 socket steered to a peer's inbound port publishes it", .op = ACTIVE,
	  .netns = POD_A, .local = POD_A_IP6, .lport = 40000, .remote = POD_B_IP6,
	  .rport = IN_PORT, .mark6 = MW_ORIG_F_CONNECT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .after = TUPLE, .want_cb = 1, .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "the peer sidecar's accepted IPv6 socket on its inbound port gets the destination",
	  .op = PASSIVE, .netns = POD_B, .local = POD_B_IP6, .lport = IN_PORT,
	  .remote = POD_A_IP6, .rport = 40000, .before = TUPLE,
	  .want_mark6 = MW_ORIG_F_ACCEPTED, .want_flowinfo = 0x00012345,
	  .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "an accepted IPv6 socket on the inbound port nobody published gets nothing",
	  .op = PASSIVE, .netns = POD_B, .local = POD_B_IP6, .lport = IN_PORT,
	  .remote = POD_A_IP6, .rport = 40000 },

	/* cross-node inbound: tc steered the flow to the inbound port (mw_flow6) */
	{ "the sidecar's accepted IPv6 socket of a flow tc steered gets the pod address and the dialled port",
	  .op = PASSIVE, .netns = POD_A, .local = POD_A_IP6, .lport = IN_PORT, .remote = REMOTE6,
	  .rport = 40000, .before = FLOW, .after = FLOW, .want_mark6 = MW_ORIG_F_ACCEPTED,
	  .want_flowinfo = 0x00012345, .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) },
	{ "a flow of another peer port is not this socket's", .op = PASSIVE, .netns = POD_A,
	  .local = POD_A_IP6, .lport = IN_PORT, .remote = REMOTE6, .rport = 40001, .before = FLOW,
	  .after = FLOW },
	{ "a flow is no business of the outbound port", .op = PASSIVE, .netns = POD_A,
	  .local = POD_A_IP6, .lport = OUT_PORT, .remote = REMOTE6, .rport = 40000, .before = FLOW,
	  .after = FLOW },

	/* close */
	{ "an app's IPv6 socket closing forgets what no sidecar took", .op = STATE,
	  .state = BPF_TCP_CLOSE, .netns = POD_A, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT, .mark6 = MW_ORIG_F_CONNECT,
	  .want_mark6 = MW_ORIG_F_CONNECT, .before = TUPLE, .stats = STAT(MW_STAT_SOCKOPS_CLOSED) },
	{ "a close forgets only its own pod's entry", .op = STATE, .state = BPF_TCP_CLOSE,
	  .netns = POD_A, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .mark6 = MW_ORIG_F_CONNECT, .want_mark6 = MW_ORIG_F_CONNECT, .before = OTHER_POD,
	  .after = OTHER_POD },
	{ "an IPv6 socket that never published does not touch the tuples at its close",
	  .op = STATE, .state = BPF_TCP_CLOSE, .netns = POD_A, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT, .mark6 = MW_ORIG_F_ACCEPTED,
	  .want_mark6 = MW_ORIG_F_ACCEPTED, .before = TUPLE, .after = TUPLE },
	{ "a FIN is not a close", .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_A,
	  .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT, .before = TUPLE,
	  .after = TUPLE },

	/* acceleration: which IPv6 sockets enter mw_sock_hash6 */
	{ "accel: an app's IPv6 socket to its sidecar on [::1] is published and enters",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT, .mark6 = MW_ORIG_F_CONNECT,
	  .want_mark6 = MW_ORIG_F_CONNECT, .after = TUPLE | OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED ,
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: the sidecar's accepted IPv6 end is bound and follows its peer in",
	  .accel = 1, .op = PASSIVE, .netns = POD_B, .local = "::1", .lport = OUT_PORT,
	  .remote = "::1", .rport = 40000, .before = TUPLE | PEER_ACCEL,
	  .want_mark6 = MW_ORIG_F_ACCEPTED, .want_flowinfo = 0x00012345,
	  .after = PEER_ACCEL | OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_SOCKOPS_ACCEPT_BOUND) | STAT(MW_STAT_ACCEL_SOCK_ADDED) },
	{ "accel: an accepted IPv6 end whose peer is out stays out", .accel = 1, .op = PASSIVE,
	  .netns = POD_B, .local = "::1", .lport = OUT_PORT, .remote = "::1", .rport = 40000 },
	{ "accel: two meshed pods' sidecars on the inbound port over IPv6 enter", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP6, .lport = 41000, .remote = POD_A_IP6,
	  .rport = IN_PORT, .mark6 = MW_ORIG_F_CONNECT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .after = TUPLE | OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_SOCK_ADDED),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED ,
	  .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: the inbound port of an IPv6 address not meshed stays out", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP6, .lport = 41000, .remote = REMOTE6,
	  .rport = IN_PORT },
	/* a sidecar's delivery to its own app: told by the socket's owner, no storage */
	{ "accel: a sidecar's delivery to its app over [::1] enters", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "::1", .lport = 42000, .remote = "::1", .rport = 8080,
	  .owner = SIDECAR_UID, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED), .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: a sidecar's delivery to its app on its pod's IPv6 address enters", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP6, .lport = 42000, .remote = POD_B_IP6,
	  .rport = 8080, .owner = SIDECAR_UID, .after = OWN_ACCEL | SOCKHASH, .want_cb = CB_ACCEL,
	  .stats = STAT(MW_STAT_ACCEL_SOCK_ADDED), .want_own_flags = MW_ACCEL_CONNECT },
	{ "accel: an app's own [::1] connection stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_B, .local = "::1", .lport = 42000, .remote = "::1", .rport = 8080,
	  .owner = APP_UID },
	{ "accel: an app's connection to its own pod's IPv6 address stays out", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = POD_B_IP6, .lport = 42000, .remote = POD_B_IP6,
	  .rport = 8080, .owner = APP_UID },
	{ "accel: the sidecar to another meshed pod's IPv6 port it may dial direct stays out",
	  .accel = 1, .op = ACTIVE, .netns = POD_B, .local = POD_B_IP6, .lport = 42000,
	  .remote = POD_A_IP6, .rport = 8080, .owner = SIDECAR_UID },
	{ "accel: the sidecar to its own inbound port on [::1] is no delivery", .accel = 1,
	  .op = ACTIVE, .netns = POD_B, .local = "::1", .lport = 42000, .remote = "::1",
	  .rport = IN_PORT, .owner = SIDECAR_UID },
	{ "accel: with interception.ipv6 = refuse a sidecar's [::1] delivery stays out",
	  .accel = 1, .refuse = 1, .op = ACTIVE, .netns = POD_B, .local = "::1", .lport = 42000,
	  .remote = "::1", .rport = 8080, .owner = SIDECAR_UID },
	{ "accel: a pod without acceleration stays out", .accel = 1, .op = ACTIVE,
	  .netns = POD_A, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT },
	{ "accel: with interception.ipv6 = refuse no IPv6 socket enters", .accel = 1,
	  .refuse = 1, .op = ACTIVE, .netns = POD_B, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT },
	{ "accel: mw_accel_state6 full: published, not accelerated, counted", .accel = 1,
	  .full = FULL_STATE, .op = ACTIVE, .netns = POD_B, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT, .mark6 = MW_ORIG_F_CONNECT,
	  .want_mark6 = MW_ORIG_F_CONNECT, .after = TUPLE, .want_cb = 1,
	  .stats = STAT(MW_STAT_SOCKOPS_TUPLE_ADDED) | STAT(MW_STAT_ACCEL_ERROR),
	  .decision = MW_DEC_SOCKOPS_PUBLISHED },
	{ "accel: mw_sock_hash6 full: its state taken back, counted", .accel = 1,
	  .full = FULL_SOCKS, .op = ACTIVE, .netns = POD_B, .local = POD_B_IP6, .lport = 41000,
	  .remote = POD_A_IP6, .rport = IN_PORT, .stats = STAT(MW_STAT_ACCEL_ERROR) },

	/* acceleration: FIN and close */
	{ "accel: at its FIN an IPv6 socket nothing was sent to leaves mw_sock_hash6, its state "
	  "goes, no more callbacks", .accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .before = OWN_ACCEL | PEER_ACCEL | SOCKHASH, .cb_before = CB_ACCEL, .after = PEER_ACCEL,
	  CB_AFTER(0) },
	{ "accel: at its FIN an IPv6 socket that was sent to stays in mw_sock_hash6, its state goes",
	  .accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_B, .local = "::1",
	  .lport = 40000, .remote = "::1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .own_flags = MW_ACCEL_RX, .cb_before = CB_ACCEL, .after = SOCKHASH, CB_AFTER(0) },
	{ "accel: an IPv6 socket's FIN after its peer's (LAST_ACK)", .accel = 1, .op = STATE,
	  .state = BPF_TCP_LAST_ACK, .netns = POD_B, .local = POD_B_IP6, .lport = 41000,
	  .remote = POD_A_IP6, .rport = IN_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, CB_AFTER(0) },
	{ "accel: at its FIN an app's IPv6 socket that published keeps its close callback",
	  .accel = 1, .op = STATE, .state = BPF_TCP_FIN_WAIT1, .netns = POD_B, .local = "::1",
	  .lport = 40000, .remote = "::1", .rport = OUT_PORT, .mark6 = MW_ORIG_F_CONNECT,
	  .want_mark6 = MW_ORIG_F_CONNECT, .before = TUPLE | OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, .after = TUPLE, .want_cb = 1, CB_AFTER(BPF_SOCK_OPS_STATE_CB_FLAG) },
	{ "accel: other state changes of an IPv6 socket leave it alone", .accel = 1, .op = STATE,
	  .state = BPF_TCP_FIN_WAIT2, .netns = POD_B, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH,
	  .cb_before = CB_ACCEL, .after = OWN_ACCEL | SOCKHASH, CB_AFTER(CB_ACCEL) },
	{ "accel: at close an IPv6 socket's state goes, its peer's stays", .accel = 1,
	  .op = STATE, .state = BPF_TCP_CLOSE, .netns = POD_B, .local = "::1", .lport = 40000,
	  .remote = "::1", .rport = OUT_PORT, .before = OWN_ACCEL | PEER_ACCEL,
	  .after = PEER_ACCEL },
	{ "accel: an ACK of a bulk IPv6 sender's TCP data (MW_ACCEL_LEAVE): it leaves "
	  "mw_sock_hash6, no more RTT callbacks", .accel = 1, .op = RTT, .netns = POD_B,
	  .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .before = OWN_ACCEL | SOCKHASH,
	  .own_flags = MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE, .cb_before = CB_ACCEL,
	  .after = OWN_ACCEL, .want_own_flags = MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE,
	  .want_cb = BPF_SOCK_OPS_STATE_CB_FLAG },
	{ "accel: an ACK of an IPv6 socket that is not leaving changes nothing", .accel = 1,
	  .op = RTT, .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1",
	  .rport = OUT_PORT, .before = OWN_ACCEL | SOCKHASH, .own_flags = MW_ACCEL_TCP_TX,
	  .cb_before = CB_ACCEL, .after = OWN_ACCEL | SOCKHASH, .want_own_flags = MW_ACCEL_TCP_TX },
	{ "accel: its state goes at close also after a restart with interception.ipv6 = refuse",
	  .accel = 1, .refuse = 1, .op = STATE, .state = BPF_TCP_CLOSE, .netns = POD_B,
	  .local = POD_B_IP6, .lport = 41000, .remote = POD_A_IP6, .rport = IN_PORT,
	  .before = OWN_ACCEL },
};

/* A socket as mw_sock_hash6 and mw_accel_state6 key it, from its own side (or its peer's). */
static struct mw_sock6_key sock_key(const struct sockops6_case *c, int peer)
{
	struct mw_sock6_key k = {
		.local_port = peer ? c->rport : c->lport,
		.remote_port = peer ? c->lport : c->rport,
	};

	mw_test_ip6(peer ? c->remote : c->local, k.local_ip6);
	mw_test_ip6(peer ? c->local : c->remote, k.remote_ip6);
	/* Every pod has its own ::1. */
	k.netns_cookie = strcmp(c->remote, "::1") == 0 ? c->netns : 0;
	return k;
}

/* The connection as mw_orig_tuple6 keys it (the app is the client), in `netns`. */
static struct mw_tuple6 tuple_key(const struct sockops6_case *c, __u64 netns)
{
	int accepted = c->op == PASSIVE;
	struct mw_tuple6 k = {
		.client_port = accepted ? c->rport : c->lport,
		.server_port = accepted ? c->lport : c->rport,
	};

	mw_test_ip6(accepted ? c->remote : c->local, k.client_ip6);
	mw_test_ip6(accepted ? c->local : c->remote, k.server_ip6);
	/* Every pod has its own ::1. */
	k.netns_cookie = mw_is_loopback6(k.server_ip6) ? netns : 0;
	return k;
}

static void run_case(struct mw_test_run *run, const struct sockops6_case *c)
{
	struct bpf_sock sk = { .family = MW_AF_INET6 };
	struct tcp6_sock tp6 = { .inet6 = { .flow_label = bpf_htonl(FLOW_LABEL) } };
	/* Its owner and psock (the psock is only recorded: sockops_test checks it). */
	union mw_test_tcp tcp = {};
	struct bpf_sock_ops ctx = {
		.op = c->op,
		.family = MW_AF_INET6,
		.local_port = c->lport,
		.remote_port = bpf_htonl(c->rport),
		.bpf_sock_ops_cb_flags = c->cb_before,
		.sk = &sk,
	};
	struct mw_orig6 orig = { .port = bpf_htons(ORIG_PORT), .flags = MW_ORIG_F_CONNECT };
	struct mw_tuple6 own = tuple_key(c, c->netns);
	struct mw_tuple6 other = tuple_key(c, c->netns == POD_B ? POD_A : POD_B);
	struct mw_sock6_key own_sk = sock_key(c, 0), peer_sk = sock_key(c, 1);
	struct mw_accel_state own_state = { .flags = c->own_flags }, peer_state = {};
	struct mw_accel_state *st;
	struct mw_orig6 *mark, *o;
	__u64 sk_id = 1;
	__u32 want_ip[4];
	int ret;

	mw_test_pods();
	mw_test_settings(c->accel, c->refuse ? MW_IPV6_REFUSE : MW_IPV6_INTERCEPT, SIDECAR_UID);
	if (c->full)
		mw_test_map_limit(c->full == FULL_STATE ? (void *)&mw_accel_state6 :
				  (void *)&mw_sock_hash6, 0);
	if (c->before & OWN_ACCEL)
		bpf_map_update_elem(&mw_accel_state6, &own_sk, &own_state, BPF_ANY);
	if (c->before & PEER_ACCEL)
		bpf_map_update_elem(&mw_accel_state6, &peer_sk, &peer_state, BPF_ANY);
	if (c->before & SOCKHASH)
		bpf_map_update_elem(&mw_sock_hash6, &own_sk, &sk_id, BPF_ANY);
	mw_test_task.netns_cookie = c->netns;
	mw_test_no_sk_storage = c->no_storage;
	mw_test_tcp6_sock = c->not_tcp6 ? NULL : &tp6;
	tcp.tcp.inet_conn.icsk_inet.sk.sk_user_data = (void *)(0x7f0012345600ULL | 6);
	tcp.owner.sk_uid.val = c->owner;
	mw_test_tcp_sock = &tcp;
	mw_test_ip6(ORIG_IP6, orig.ip6);
	mw_test_ip6(ORIG_IP6, want_ip);
	mw_test_ip6(c->local, ctx.local_ip6);
	mw_test_ip6(c->remote, ctx.remote_ip6);
	ctx.args[1] = c->state;
	if (c->before & TUPLE)
		bpf_map_update_elem(&mw_orig_tuple6, &own, &orig, BPF_ANY);
	if (c->before & OTHER_POD)
		bpf_map_update_elem(&mw_orig_tuple6, &other, &orig, BPF_ANY);
	if (c->mark6)
		mw_test_mark6(&sk, c->mark6);
	if (c->before & FLOW) {
		/* Keyed by the socket's own addresses, the peer port 40000. */
		struct mw_flow6_key fk = { .remote_port = bpf_htons(40000) };
		struct mw_flow4 flow = { .orig_port = bpf_htons(ORIG_PORT) };

		mw_test_ip6(REMOTE6, fk.remote_ip6);
		mw_test_ip6(c->local, fk.local_ip6);
		bpf_map_update_elem(&mw_flow6, &fk, &flow, BPF_ANY);
		/* The sidecar learns the pod's own address, with the dialled port. */
		mw_test_ip6(c->local, want_ip);
	}

	ret = mw_sockops(&ctx);

	MW_EXPECT_EQ(run, ret, 1, "return value");
	if (c->check_cb)
		MW_EXPECT_EQ(run, ctx.bpf_sock_ops_cb_flags, c->cb_after, "the callbacks asked for after");
	mark = mw_test_sk_storage(&mw_orig6_sk, &sk);
	MW_EXPECT_EQ(run, mark ? mark->flags : 0, c->want_mark6, "mw_orig6_sk flags");
	if (mark && c->want_mark6) {
		for (int i = 0; i < 4; i++)
			MW_EXPECT_EQ(run, mark->ip6[i], want_ip[i], "mw_orig6_sk address word");
		MW_EXPECT_EQ(run, bpf_ntohs(mark->port), ORIG_PORT, "mw_orig6_sk port");
		if (c->want_mark6 == MW_ORIG_F_ACCEPTED)
			MW_EXPECT_EQ(run, bpf_ntohl(mark->flowinfo), c->want_flowinfo,
				     "mw_orig6_sk flowinfo (host order)");
	}
	MW_EXPECT_EQ(run, mw_test_sk_storage(&mw_orig_sk, &sk) != NULL, 0,
		     "mw_orig_sk (IPv4) untouched");
	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_orig_tuple6, &own), !!(c->after & TUPLE),
		     "mw_orig_tuple6 holds the connection");
	/* Between pod addresses the key holds no cookie: no other pod's key to tell apart. */
	if (!own.netns_cookie) {
		MW_EXPECT_EQ(run, c->after & OTHER_POD, 0, "a case with pod addresses has OTHER_POD");
	} else {
		MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_orig_tuple6, &other),
			     !!(c->after & OTHER_POD), "mw_orig_tuple6 holds the other pod's");
	}
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_orig_tuple6),
		     !!(c->after & TUPLE) + !!(c->after & OTHER_POD), "mw_orig_tuple6 entries");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_flow6), !!(c->after & FLOW),
		     "mw_flow6 entries (sockops only reads them)");
	o = bpf_map_lookup_elem(&mw_orig_tuple6, &own);
	if (o && (c->after & TUPLE)) {
		for (int i = 0; i < 4; i++)
			MW_EXPECT_EQ(run, o->ip6[i], want_ip[i], "published address word");
		MW_EXPECT_EQ(run, bpf_ntohs(o->port), ORIG_PORT, "published port");
	}
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_orig_tuple4), 0, "mw_orig_tuple4 untouched");
	st = bpf_map_lookup_elem(&mw_accel_state6, &own_sk);
	MW_EXPECT_EQ(run, !!st, !!(c->after & OWN_ACCEL), "mw_accel_state6 holds the socket");
	if (st)
		MW_EXPECT_EQ(run, st->flags, c->want_own_flags, "its mw_accel_state6 flags");
	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_accel_state6, &peer_sk),
		     !!(c->after & PEER_ACCEL), "mw_accel_state6 holds the peer");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_accel_state6),
		     !!(c->after & OWN_ACCEL) + !!(c->after & PEER_ACCEL), "mw_accel_state6 entries");
	MW_EXPECT_EQ(run, !!bpf_map_lookup_elem(&mw_sock_hash6, &own_sk), !!(c->after & SOCKHASH),
		     "mw_sock_hash6 holds the socket");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_sock_hash6), !!(c->after & SOCKHASH),
		     "mw_sock_hash6 entries");
	MW_EXPECT_EQ(run, mw_test_map_count(&mw_sock_hash) + mw_test_map_count(&mw_accel_state),
		     0, "the IPv4 acceleration maps untouched");
	const struct mw_event *ev = mw_test_expect_sockops_end(run, c->want_cb, c->stats, c->decision);

	if (ev) {
		MW_EXPECT_EQ(run, ev->netns_cookie, c->netns, "event netns cookie");
		__u32 want[3][4];

		mw_test_ip6(c->local, want[0]);
		mw_test_ip6(ORIG_IP6, want[1]);
		mw_test_ip6(c->remote, want[2]);
		MW_EXPECT_EQ(run, ev->ip6, 1, "event family (ip6)");
		for (int i = 0; i < 4; i++) {
			MW_EXPECT_EQ(run, ev->src_ip[i], want[0][i], "event source");
			MW_EXPECT_EQ(run, ev->dst_ip[i], want[1][i], "event destination");
			MW_EXPECT_EQ(run, ev->to_ip[i], want[2][i], "event sidecar address");
		}
		MW_EXPECT_EQ(run, ev->src_port, c->lport, "event source port");
		MW_EXPECT_EQ(run, ev->dst_port, ORIG_PORT, "event destination port");
		MW_EXPECT_EQ(run, ev->to_port, c->rport, "event sidecar port");
	}
}

MW_TEST_MAIN("bpf_sockops.c (native IPv6)", cases, run_case)
