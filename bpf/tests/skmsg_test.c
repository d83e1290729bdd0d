// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg (bpf/bpf_skmsg.c), the real source compiled for the host, run on a
 * table of messages: which family's maps a socket is looked up in (IPv4,
 * v4-mapped sockets as IPv4, native IPv6 in mw_sock_hash6 and
 * mw_accel_state6), the peer's key (its own key with local and remote
 * swapped, the netns cookie only over loopback), when a message is handed
 * to the peer (bpf_msg_redirect_hash, BPF_F_INGRESS) and when it goes
 * through TCP from then on (MW_ACCEL_TCP_TX), the peer's MW_ACCEL_RX, and
 * the backlog bound: a peer holding MW_ACCEL_BACKLOG_MAX unread redirected
 * bytes (its psock's msg_tot_len, through the psock address in its
 * mw_accel_state entry) gets the message
 * through TCP and the sender enters MW_ACCEL_LAG, which it leaves only when
 * the peer has read all of its TCP bytes (copied_seq == the sender's
 * write_seq) and is under the bound again; and a bulk sender leaving: a peer
 * holding MW_ACCEL_BULK_MIN unread bytes makes a socket that nothing was ever
 * redirected to send through TCP for good and ask sockops to take it out of
 * the map (MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE).
 * Which sockets enter the maps is sockops' decision: sockops_test.c and
 * sockops6_test.c. Linux 6.18 has no BPF_PROG_TEST_RUN for sk_msg programs
 * (sk_msg_prog_ops has no test_run).
 */
#define MW_CFG_CONST
#include "../bpf_skmsg.c"
#include "datapath.h"

#include <stdio.h>
#include <string.h>

enum family { INET, INET6_MAPPED, INET6, UNIX };

struct skmsg_case {
	const char *what;
	enum family family;
	__u64 netns;		/* the sender's pod */
	const char *local;	/* the sender's address (IPv4 for INET6_MAPPED) */
	__u16 lport;
	const char *remote;
	__u16 rport;
	/* the maps before: entries of this connection, keyed in `scope` (0: netns) */
	__u64 scope;
	int own;		/* the sender has its state entry */
	__u32 own_flags;
	int peer;		/* the peer has its state entry */
	__u32 peer_flags;
	int peer_socket;	/* the peer is in the socket map */
	int other_family;	/* the entries are in the other family's maps (v4-mapped keys there) */
	int psock;		/* the peer's psock address is in its state entry */
	__u32 backlog;		/* its unread redirected bytes (msg_tot_len) */
	int peer_read_all;	/* its copied_seq is the sender's write_seq (else behind) */
	/* what the program must do */
	int want_call;		/* bpf_msg_redirect_hash called, to the peer in the family's map */
	__u32 want_own_flags;
	__u32 want_peer_flags;
	int check_locks;	/* bpf_spin_lock must have been called want_locks times */
	int want_locks;
	int want_own_zero;	/* the sender's flags end 0 (want_own_flags 0 means unchanged) */
	__u32 want_stats;	/* MW_STAT_BIT mask of the counters that moved */
	/* learning short connections: the hop's message count (mw_accel_state.msgs) */
	int always;		/* short_connections = "accelerate" */
	__u32 own_msgs, peer_msgs;	/* before */
	__u32 want_own_msgs, want_peer_msgs;
};

#define LAGGED MW_STAT_BIT(MW_STAT_ACCEL_LAGGED)
#define BULK MW_STAT_BIT(MW_STAT_ACCEL_BULK)
#define LEFT (MW_ACCEL_CLOSING | MW_ACCEL_TCP_TX | MW_ACCEL_LEAVE)

static const struct skmsg_case cases[] = {
	{ "IPv4: an app's message goes to its sidecar", .family = INET, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_socket = 1, .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "IPv4: sidecar to sidecar between pod addresses (no netns scope)", .family = INET,
	  .netns = POD_B, .local = POD_B_IP, .lport = 41000, .remote = POD_A_IP, .rport = IN_PORT,
	  .own = 1, .peer = 1, .peer_socket = 1, .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "v4-mapped: a dual-stack app's socket finds its IPv4 sidecar in mw_sock_hash",
	  .family = INET6_MAPPED, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .peer = 1, .peer_socket = 1,
	  .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "v4-mapped: never looked up in the IPv6 maps", .family = INET6_MAPPED, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_socket = 1, .other_family = 1 },
	{ "IPv6: an app's message goes to its sidecar on [::1] in mw_sock_hash6", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_socket = 1, .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "IPv6: sidecar to sidecar between pod IPv6 addresses (no netns scope)",
	  .family = INET6, .netns = POD_B, .local = POD_B_IP6, .lport = 41000,
	  .remote = POD_A_IP6, .rport = IN_PORT, .own = 1, .peer = 1, .peer_socket = 1,
	  .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "IPv6: a sidecar's delivery to its app over [::1]", .family = INET6, .netns = POD_B,
	  .local = "::1", .lport = 42000, .remote = "::1", .rport = 8080, .own = 1, .peer = 1,
	  .peer_socket = 1, .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "IPv6: another pod's [::1] connection with the same ports is not this one",
	  .family = INET6, .netns = POD_A, .local = "::1", .lport = 40000, .remote = "::1",
	  .rport = OUT_PORT, .scope = POD_B, .own = 1, .peer = 1, .peer_socket = 1 },
	{ "IPv6: a socket not accelerated is left alone", .family = INET6, .netns = POD_B,
	  .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT, .peer = 1,
	  .peer_socket = 1 },
	{ "IPv6: a peer never accelerated: through TCP from now on", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .want_own_flags = MW_ACCEL_TCP_TX },
	{ "IPv6: a closing peer gets nothing more redirected", .family = INET6, .netns = POD_B,
	  .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT, .own = 1,
	  .peer = 1, .peer_flags = MW_ACCEL_CLOSING, .peer_socket = 1,
	  .want_own_flags = MW_ACCEL_TCP_TX, .want_peer_flags = MW_ACCEL_CLOSING },
	{ "IPv6: a socket that sent through TCP keeps doing so", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .own_flags = MW_ACCEL_TCP_TX, .peer = 1, .peer_socket = 1,
	  .want_own_flags = MW_ACCEL_TCP_TX },
	{ "IPv6: a peer that left the socket map: through TCP from now on", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .want_call = 1, .want_own_flags = MW_ACCEL_TCP_TX,
	  .want_peer_flags = MW_ACCEL_RX },
	{ "IPv4: the first message to a peer takes its lock to set MW_ACCEL_RX", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .peer = 1, .peer_socket = 1, .want_call = 1,
	  .want_peer_flags = MW_ACCEL_RX, .check_locks = 1, .want_locks = 1 },
	{ "IPv4: a peer with MW_ACCEL_RX is redirected to without its lock", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .peer = 1, .peer_flags = MW_ACCEL_RX, .peer_socket = 1,
	  .want_call = 1, .check_locks = 1, .want_locks = 0 },
	{ "IPv6: a peer with MW_ACCEL_RX is redirected to without its lock", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_flags = MW_ACCEL_RX, .peer_socket = 1, .want_call = 1,
	  .check_locks = 1, .want_locks = 0 },
	{ "IPv4: a peer that received and is closing gets nothing more redirected",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .peer = 1,
	  .peer_flags = MW_ACCEL_RX | MW_ACCEL_CLOSING, .peer_socket = 1,
	  .want_own_flags = MW_ACCEL_TCP_TX },
	{ "IPv4: a closing peer gets nothing more redirected", .family = INET, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_flags = MW_ACCEL_CLOSING, .peer_socket = 1,
	  .want_own_flags = MW_ACCEL_TCP_TX, .want_peer_flags = MW_ACCEL_CLOSING },
	{ "backlog: the peer holds the bound unread, this socket was sent to (it cannot leave): "
	  "through TCP for now (MW_ACCEL_LAG, not MW_ACCEL_TCP_TX), counted", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_RX, .peer = 1, .peer_socket = 1,
	  .psock = 1, .backlog = MW_ACCEL_BACKLOG_MAX,
	  .want_own_flags = MW_ACCEL_RX | MW_ACCEL_LAG, .want_stats = LAGGED },
	{ "backlog: a byte under the bound, a socket that was sent to: the message is redirected",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_RX,
	  .peer = 1, .peer_socket = 1, .psock = 1, .backlog = MW_ACCEL_BACKLOG_MAX - 1,
	  .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "bulk: the peer holds MW_ACCEL_BULK_MIN unread, nothing was ever sent to this socket: "
	  "it leaves (MW_ACCEL_CLOSING, _TCP_TX, _LEAVE under its lock), through TCP, counted",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .peer = 1, .peer_socket = 1,
	  .psock = 1, .backlog = MW_ACCEL_BULK_MIN, .want_own_flags = LEFT, .check_locks = 1,
	  .want_locks = 1, .want_stats = BULK },
	{ "bulk: a byte under MW_ACCEL_BULK_MIN, the message is redirected", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .peer = 1, .peer_socket = 1, .psock = 1,
	  .backlog = MW_ACCEL_BULK_MIN - 1, .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "bulk: IPv6, in mw_accel_state6, the same threshold", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_socket = 1, .psock = 1, .backlog = MW_ACCEL_BULK_MIN,
	  .want_own_flags = LEFT, .want_stats = BULK },
	{ "bulk: a socket that left sends through TCP and looks at nothing", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .own_flags = LEFT, .peer = 1, .peer_socket = 1,
	  .psock = 1, .check_locks = 1, .want_locks = 0 },
	{ "bulk: the peer of a socket that left never redirects to it (MW_ACCEL_CLOSING): "
	  "through TCP from now on", .family = INET, .netns = POD_B, .local = "127.0.0.1",
	  .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .peer = 1,
	  .peer_flags = LEFT, .peer_socket = 1, .want_own_flags = MW_ACCEL_TCP_TX },
	{ "backlog: lagging, the peer has not read all our TCP bytes: TCP again (a redirect "
	  "would overtake them)", .family = INET, .netns = POD_B, .local = "127.0.0.1",
	  .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1,
	  .own_flags = MW_ACCEL_LAG, .peer = 1, .peer_socket = 1, .psock = 1 },
	{ "backlog: lagging, the peer read every TCP byte but still holds the bound: TCP",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_LAG,
	  .peer = 1, .peer_socket = 1, .psock = 1, .peer_read_all = 1,
	  .backlog = MW_ACCEL_BACKLOG_MAX },
	{ "backlog: lagging, the peer read every TCP byte and caught up: redirected again, "
	  "MW_ACCEL_LAG cleared", .family = INET, .netns = POD_B, .local = "127.0.0.1",
	  .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1,
	  .own_flags = MW_ACCEL_LAG, .peer = 1, .peer_socket = 1, .psock = 1,
	  .peer_read_all = 1, .backlog = 4096, .want_call = 1, .want_own_zero = 1,
	  .want_peer_flags = MW_ACCEL_RX },
	{ "backlog: no psock recorded for the peer: redirected, no bound (as before)",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .peer = 1, .peer_socket = 1,
	  .backlog = 2 * MW_ACCEL_BACKLOG_MAX, .want_call = 1, .want_peer_flags = MW_ACCEL_RX },
	{ "backlog: IPv6, the peer's psock in its mw_accel_state6 entry, the same bound", .family = INET6,
	  .netns = POD_B, .local = "::1", .lport = 40000, .remote = "::1", .rport = OUT_PORT,
	  .own = 1, .own_flags = MW_ACCEL_RX, .peer = 1, .peer_socket = 1, .psock = 1,
	  .backlog = MW_ACCEL_BACKLOG_MAX, .want_own_flags = MW_ACCEL_RX | MW_ACCEL_LAG,
	  .want_stats = LAGGED },
	{ "backlog: a socket that sent through TCP for good never looks at it",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_TCP_TX,
	  .peer = 1, .peer_socket = 1, .psock = 1, .backlog = MW_ACCEL_BACKLOG_MAX },
	{ "learn: a connecting end's message counts in its own entry", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_CONNECT, .own_msgs = 1, .peer = 1,
	  .peer_socket = 1, .want_call = 1, .want_peer_flags = MW_ACCEL_RX, .want_own_msgs = 2 },
	{ "learn: an accepted end's message counts in its peer's, the connecting end's, entry",
	  .family = INET6, .netns = POD_B, .local = "::1", .lport = OUT_PORT, .remote = "::1",
	  .rport = 40000, .own = 1, .peer = 1, .peer_flags = MW_ACCEL_CONNECT, .peer_msgs = 3,
	  .peer_socket = 1, .want_call = 1, .want_peer_flags = MW_ACCEL_CONNECT | MW_ACCEL_RX,
	  .want_peer_msgs = 4 },
	{ "learn: counted up to MW_ACCEL_SHORT_MSGS + 1 only (a long hop pays no atomic add)",
	  .family = INET, .netns = POD_B, .local = "127.0.0.1", .lport = 40000,
	  .remote = "127.0.0.1", .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_CONNECT,
	  .own_msgs = MW_ACCEL_SHORT_MSGS + 1, .peer = 1, .peer_socket = 1, .want_call = 1,
	  .want_peer_flags = MW_ACCEL_RX, .want_own_msgs = MW_ACCEL_SHORT_MSGS + 1 },
	{ "learn: a connecting end sending through TCP for good still counts", .family = INET,
	  .netns = POD_B, .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1",
	  .rport = OUT_PORT, .own = 1, .own_flags = MW_ACCEL_CONNECT | MW_ACCEL_TCP_TX,
	  .peer = 1, .peer_socket = 1, .want_own_msgs = 1 },
	{ "accelerate: nothing is counted", .always = 1, .family = INET, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .own = 1, .own_flags = MW_ACCEL_CONNECT, .own_msgs = 1, .peer = 1, .peer_socket = 1,
	  .want_call = 1, .want_peer_flags = MW_ACCEL_RX, .want_own_msgs = 1 },
	{ "another family (AF_UNIX) passes untouched", .family = UNIX, .netns = POD_B,
	  .local = "127.0.0.1", .lport = 40000, .remote = "127.0.0.1", .rport = OUT_PORT,
	  .own = 1, .peer = 1, .peer_socket = 1 },
};

static int v6_keys(const struct skmsg_case *c)
{
	return c->family == INET6 || (c->family == INET6_MAPPED && c->other_family);
}

/* The address as the message's IPv6 fields hold it (v4-mapped for IPv4). */
static void addr6(const struct skmsg_case *c, const char *ip, __u32 out[4])
{
	char mapped[64];

	if (c->family == INET6) {
		mw_test_ip6(ip, out);
		return;
	}
	snprintf(mapped, sizeof(mapped), "::ffff:%s", ip);
	mw_test_ip6(mapped, out);
}

/* A socket's key as sockops made it, the test's own reading of the design. */
static union mw_accel_key key_of(const struct skmsg_case *c, int peer)
{
	const char *local = peer ? c->remote : c->local, *remote = peer ? c->local : c->remote;
	__u64 scope = c->scope ? c->scope : c->netns;
	union mw_accel_key k;

	memset(&k, 0, sizeof(k));
	if (v6_keys(c)) {
		addr6(c, local, k.k6.local_ip6);
		addr6(c, remote, k.k6.remote_ip6);
		k.k6.local_port = peer ? c->rport : c->lport;
		k.k6.remote_port = peer ? c->lport : c->rport;
		k.k6.netns_cookie = strcmp(c->remote, "::1") == 0 ? scope : 0;
	} else {
		k.k4.local_ip4 = mw_test_ip4(local);
		k.k4.remote_ip4 = mw_test_ip4(remote);
		k.k4.local_port = peer ? c->rport : c->lport;
		k.k4.remote_port = peer ? c->lport : c->rport;
		k.k4.netns_cookie = strncmp(c->remote, "127.", 4) == 0 ? scope : 0;
	}
	return k;
}

static void run_case(struct mw_test_run *run, const struct skmsg_case *c)
{
	void *states = v6_keys(c) ? (void *)&mw_accel_state6 : (void *)&mw_accel_state;
	void *socks = v6_keys(c) ? (void *)&mw_sock_hash6 : (void *)&mw_sock_hash;
	void *family_socks = c->family == INET6 ? (void *)&mw_sock_hash6 : (void *)&mw_sock_hash;
	union mw_accel_key own = key_of(c, 0), peer = key_of(c, 1);
	struct mw_accel_state own_state = { .flags = c->own_flags, .msgs = c->own_msgs };
	struct mw_accel_state peer_state = { .flags = c->peer_flags, .msgs = c->peer_msgs };
	struct mw_accel_state *s;
	struct sk_msg_md msg = {
		.local_port = c->lport,
		.remote_port = bpf_htonl(c->rport),
	};
	size_t key_size = c->family == INET6 ? sizeof(struct mw_sock6_key) : sizeof(struct mw_sock_key);
	/* The sender's and the peer's tcp_sock, the peer's psock, as the kernel's. */
	static struct tcp_sock___mwa own_tcp, peer_tcp;
	static struct sk_psock___mwa peer_psock;
	__u64 psock_addr = (__u64)(unsigned long)&peer_psock;
	__u64 sk = 1;
	int ret;

	mw_test_pods();
	mw_test_settings(1, MW_IPV6_INTERCEPT, SIDECAR_UID);
	mw_cfg.accel_short = c->always ? MW_ACCEL_SHORT_ACCELERATE : MW_ACCEL_SHORT_LEARN;
	mw_test_task.netns_cookie = c->netns;
	switch (c->family) {
	case INET:
		msg.family = MW_AF_INET;
		break;
	case INET6_MAPPED:
	case INET6:
		msg.family = MW_AF_INET6;
		addr6(c, c->local, msg.local_ip6);
		addr6(c, c->remote, msg.remote_ip6);
		break;
	case UNIX:
		msg.family = 1;	/* AF_UNIX */
		break;
	}
	if (c->family != INET6) {
		msg.local_ip4 = mw_test_ip4(c->local);
		msg.remote_ip4 = mw_test_ip4(c->remote);
	}
	if (c->psock)
		peer_state.psock = psock_addr;
	if (c->own)
		bpf_map_update_elem(states, &own, &own_state, BPF_ANY);
	if (c->peer)
		bpf_map_update_elem(states, &peer, &peer_state, BPF_ANY);
	if (c->peer_socket)
		bpf_map_update_elem(socks, &peer, &sk, BPF_ANY);
	own_tcp.write_seq = 100000;
	peer_tcp.copied_seq = c->peer_read_all ? own_tcp.write_seq : own_tcp.write_seq - 1448;
	peer_psock.sk = &peer_tcp;
	peer_psock.msg_tot_len = c->backlog;
	mw_test_tcp_sock = &own_tcp;
	msg.sk = (struct bpf_sock *)&own_tcp;

	mw_test_spin_locks = 0;
	ret = mw_skmsg_redirect(&msg);

	MW_EXPECT_EQ(run, ret, SK_PASS, "verdict (a redirect is SK_PASS too)");
	MW_EXPECT_EQ(run, mw_test_redirect_map == family_socks, c->want_call,
		     "bpf_msg_redirect_hash on the family's socket map");
	MW_EXPECT_EQ(run, mw_test_redirect_map != NULL, c->want_call, "bpf_msg_redirect_hash called");
	if (c->want_call && mw_test_redirect_map) {
		MW_EXPECT_EQ(run, memcmp(mw_test_redirect_key, &peer, key_size), 0,
			     "redirected to the peer's key");
		MW_EXPECT_EQ(run, mw_test_redirect_flags, BPF_F_INGRESS, "redirect flags");
	}
	s = bpf_map_lookup_elem(states, &own);
	MW_EXPECT_EQ(run, !!s, c->own, "the sender's state entry");
	if (s)
		MW_EXPECT_EQ(run, s->flags,
			     c->want_own_zero ? 0 : c->want_own_flags ? c->want_own_flags : c->own_flags,
			     "the sender's flags");
	if (s)
		MW_EXPECT_EQ(run, s->msgs, c->want_own_msgs, "the sender's hop message count");
	s = bpf_map_lookup_elem(states, &peer);
	MW_EXPECT_EQ(run, !!s, c->peer, "the peer's state entry");
	if (s) {
		MW_EXPECT_EQ(run, s->flags, c->want_peer_flags ? c->want_peer_flags : c->peer_flags,
			     "the peer's flags");
		MW_EXPECT_EQ(run, s->psock, c->psock ? psock_addr : 0,
			     "the peer's psock address (the program only reads it)");
		MW_EXPECT_EQ(run, s->msgs, c->want_peer_msgs, "the peer's hop message count");
	}
	MW_EXPECT_EQ(run, mw_test_map_count(states), c->own + c->peer, "state entries");
	MW_EXPECT_EQ(run, mw_test_map_count(socks), c->peer_socket, "socket map entries");
	MW_EXPECT_EQ(run, mw_test_map_count(states == (void *)&mw_accel_state ?
					   (void *)&mw_accel_state6 : (void *)&mw_accel_state), 0,
		     "the other family's state map untouched");
	if (c->check_locks)
		MW_EXPECT_EQ(run, mw_test_spin_locks, c->want_locks, "bpf_spin_lock calls");
	mw_test_expect_stats(run, c->want_stats);
	MW_EXPECT_EQ(run, mw_test_nevents, 0, "trace events");
}

MW_TEST_MAIN("bpf_skmsg.c", cases, run_case)
