// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * connect4, connect6, getpeername4, getpeername6, sendmsg4, sendmsg6,
 * recvmsg4 and recvmsg6 (bpf/bpf_sock.c), the real source compiled for the host, run on a
 * table of cases: one node with meshed pods (one with DNS capture),
 * exclusions node-wide and per pod, callers that are apps, sidecars or
 * unmeshed. Linux 6.18 answers BPF_PROG_TEST_RUN for cgroup_sock_addr
 * programs with ENOTSUPP, hence the host build.
 */
#define MW_CFG_CONST
#include "../bpf_sock.c"
#include "datapath.h"

#define POD_C		0xd004ULL	/* meshed, with include lists */
#define POD_C_IP	"10.1.0.12"
#define POD_C_IP6	"fd00:10:1::12"
#define POD_D		0xf006ULL	/* meshed, DNS captured */
#define RESOLVER	"10.96.0.10"	/* the pods' resolver */
#define RESOLVER2	"10.96.0.11"	/* another one, not in [dns] servers */
#define RESOLVER6	"fd00:96::a"	/* the pods' IPv6 resolver */
#define RESOLVER6_2	"fd00:96::b"	/* another one, not in [dns] servers */
#define POD_U		0xe005ULL	/* meshed, its netns in a user namespace of its own */
#define POD_U_SIDECAR	101500		/* SIDECAR_UID mapped through it (uid_map 0 100000 65536) */
#define SOCK_DGRAM	2
#define IPPROTO_TCP_	6
#define IPPROTO_UDP_	17
#define IPPROTO_ICMP_	1

/* The node every case starts from. */
static void node(void)
{
	struct mw_pod c = { .flags = MW_POD_F_MESHED | MW_POD_F_OUT_SELECT | MW_POD_F_IN_SELECT };
	struct mw_pod d = { .flags = MW_POD_F_MESHED | MW_POD_F_DNS };
	__u64 cc = POD_C, cd = POD_D;
	__u32 ip;
	__u8 one = 1;
	struct mw_port_key port = { .dir = MW_DIR_OUT };
	struct mw_cidr4_key cidr = {};
	struct mw_in4_key in = {};

	mw_test_pods();
	{
		struct mw_pod u = { .flags = MW_POD_F_MESHED };
		__u64 cu = POD_U;
		__u32 uid = POD_U_SIDECAR;

		bpf_map_update_elem(&mw_pods, &cu, &u, BPF_ANY);
		bpf_map_update_elem(&mw_pod_uid, &cu, &uid, BPF_ANY);
	}
	/* Outbound: port 22 node-wide, 9000 for pod A only. */
	port.netns_cookie = 0;
	port.port = 22;
	bpf_map_update_elem(&mw_excl_ports, &port, &one, BPF_ANY);
	port.netns_cookie = POD_A;
	port.port = 9000;
	bpf_map_update_elem(&mw_excl_ports, &port, &one, BPF_ANY);
	/* 169.254.0.0/16 node-wide, 10.96.0.0/12 for pod A only. */
	cidr.prefixlen = 64 + 16;
	cidr.addr = mw_test_ip4("169.254.0.0");
	bpf_map_update_elem(&mw_excl_cidr4, &cidr, &one, BPF_ANY);
	cidr.prefixlen = 64 + 12;
	cidr.cookie_hi = (__u32)(POD_A >> 32);
	cidr.cookie_lo = (__u32)POD_A;
	cidr.addr = mw_test_ip4("10.96.0.0");
	bpf_map_update_elem(&mw_excl_cidr4, &cidr, &one, BPF_ANY);
	/* Inbound: 8443 node-wide, 9090 on pod B only (both its addresses). */
	in.port = 8443;
	bpf_map_update_elem(&mw_excl_in4, &in, &one, BPF_ANY);
	in.pod_ip4 = mw_test_ip4(POD_B_IP);
	in.port = 9090;
	bpf_map_update_elem(&mw_excl_in4, &in, &one, BPF_ANY);
	{
		struct mw_in6_key in6 = { .port = 9090 };

		mw_test_ip6(POD_B_IP6, in6.pod_ip6);
		bpf_map_update_elem(&mw_excl_in6, &in6, &one, BPF_ANY);
	}

	/*
	 * Pod C has include lists (Istio's include* annotations): outbound
	 * only ports 5432 and 22 and 10.50.0.0/16, inbound only port 8080.
	 */
	bpf_map_update_elem(&mw_pods, &cc, &c, BPF_ANY);
	ip = mw_test_ip4(POD_C_IP);
	bpf_map_update_elem(&mw_pod_ips, &ip, &cc, BPF_ANY);
	{
		struct mw_ip6_key c6;

		mw_test_ip6(POD_C_IP6, c6.addr);
		bpf_map_update_elem(&mw_pod_ips6, &c6, &cc, BPF_ANY);
	}
	port.netns_cookie = POD_C;
	port.dir = MW_DIR_OUT_INCL;
	port.port = 5432;
	bpf_map_update_elem(&mw_excl_ports, &port, &one, BPF_ANY);
	port.port = 22;
	bpf_map_update_elem(&mw_excl_ports, &port, &one, BPF_ANY);
	port.dir = MW_DIR_IN_INCL;
	port.port = 8080;
	bpf_map_update_elem(&mw_excl_ports, &port, &one, BPF_ANY);
	cidr.prefixlen = 64 + 16;
	cidr.cookie_hi = (__u32)(POD_C >> 32);
	cidr.cookie_lo = (__u32)POD_C;
	cidr.addr = mw_test_ip4("10.50.0.0");
	bpf_map_update_elem(&mw_incl_cidr4, &cidr, &one, BPF_ANY);

	/* Pod D has its DNS captured; [dns] servers would list RESOLVER and RESOLVER6 only. */
	bpf_map_update_elem(&mw_pods, &cd, &d, BPF_ANY);
	ip = mw_test_ip4(RESOLVER);
	bpf_map_update_elem(&mw_dns_servers4, &ip, &one, BPF_ANY);
	{
		struct mw_ip6_key r6;

		mw_test_ip6(RESOLVER6, r6.addr);
		bpf_map_update_elem(&mw_dns_servers6, &r6, &one, BPF_ANY);
	}

	/* IPv6: 2001:db8:ee::/48 node-wide, fd00:96::/64 for pod A only. */
	struct mw_cidr6_key cidr6 = { .prefixlen = 64 + 48 };

	mw_test_ip6("2001:db8:ee::", cidr6.addr);
	bpf_map_update_elem(&mw_excl_cidr6, &cidr6, &one, BPF_ANY);
	cidr6.prefixlen = 64 + 64;
	cidr6.cookie_hi = (__u32)(POD_A >> 32);
	cidr6.cookie_lo = (__u32)POD_A;
	mw_test_ip6("fd00:96::", cidr6.addr);
	bpf_map_update_elem(&mw_excl_cidr6, &cidr6, &one, BPF_ANY);

	/*
	 * Pod C's included IPv6 range fd00:50::/32, with fd00:50:9::/48 in it
	 * excluded for pod C; pod A includes fd00:51::/32 (not pod C's).
	 */
	cidr6.prefixlen = 64 + 32;
	cidr6.cookie_hi = (__u32)(POD_C >> 32);
	cidr6.cookie_lo = (__u32)POD_C;
	mw_test_ip6("fd00:50::", cidr6.addr);
	bpf_map_update_elem(&mw_incl_cidr6, &cidr6, &one, BPF_ANY);
	cidr6.prefixlen = 64 + 48;
	mw_test_ip6("fd00:50:9::", cidr6.addr);
	bpf_map_update_elem(&mw_excl_cidr6, &cidr6, &one, BPF_ANY);
	cidr6.prefixlen = 64 + 32;
	cidr6.cookie_hi = (__u32)(POD_A >> 32);
	cidr6.cookie_lo = (__u32)POD_A;
	mw_test_ip6("fd00:51::", cidr6.addr);
	bpf_map_update_elem(&mw_incl_cidr6, &cidr6, &one, BPF_ANY);
}

enum hook { CONNECT4, CONNECT6, GETPEERNAME4, GETPEERNAME6, SENDMSG4, SENDMSG6, RECVMSG4, RECVMSG6 };

struct sock_case {
	const char *what;
	enum hook hook;
	/* the node's settings (beyond the defaults below) */
	int accel;
	int ipv6_allow;		/* interception.ipv6 = "pass" */
	int intercept6;		/* interception.ipv6 = "intercept" */
	__u32 sidecar_uid;	/* 0: SIDECAR_UID */
	int dns_servers;	/* [dns] servers = [RESOLVER, RESOLVER6] */
	int sources;		/* [interception] outbound_sources (0: 1) */
	__u64 cookie;		/* the socket's cookie */
	int bound;		/* the app bound the socket (an address or a port) */
	/* the caller and its socket */
	__u64 netns;
	__u32 uid;		/* the task's real UID */
	int owner_set;		/* OWNER(u): the socket's owner (sk_uid) is u, */
	__u32 owner;		/* else it is uid */
	int udp;
	int icmp;		/* a ping socket (SOCK_DGRAM, IPPROTO_ICMP) */
	int no_storage;		/* the kernel has no memory for socket storage */
	int mptcp;		/* the socket is an MPTCP socket's first subflow */
	int bound_dev;		/* bound to a device (SO_BINDTODEVICE) */
	int unbind_fails;	/* and unbinding it fails */
	__u16 mark;		/* the socket's mw_orig_sk flags before (ORIG_IP:ORIG_PORT) */
	__u16 mark6;		/* its mw_orig6_sk flags before (ORIG_IP6:ORIG_PORT) */
	const char *dst;	/* connect, sendmsg: the destination; getpeername: the
				   peer; recvmsg: the datagram's source */
	__u16 port;
	/* what the hook must do */
	int deny;
	const char *to;		/* the destination afterwards (NULL: unchanged) */
	__u16 to_port;
	__u16 want_mark;	/* mw_orig_sk flags afterwards, holding dst:port */
	__u16 want_mark6;	/* mw_orig6_sk flags afterwards, holding dst:port */
	int want_unbind;	/* SO_BINDTOIFINDEX set to 0 */
	const char *want_src;	/* bpf_bind to this source address (NULL: no bind) */
	__u32 stats;		/* the counters that are 1 (the others stay 0) */
	enum mw_decision decision;	/* the trace event (0: none) */
};

#define OWNER(u) .owner_set = 1, .owner = (u)

static const struct sock_case cases[] = {
	/* connect4: who is steered */
	{ "an app's connect goes to its sidecar", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .dst = ORIG_IP, .port = 80, .to = "127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a namespace not meshed is untouched", CONNECT4, .netns = UNMESHED, .uid = APP_UID,
	  .dst = ORIG_IP, .port = 80 },
	{ "UDP is untouched", CONNECT4, .netns = POD_A, .uid = APP_UID, .udp = 1,
	  .dst = "10.96.0.10", .port = 53 },
	{ "loopback goes direct", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .dst = "127.0.0.53", .port = 53, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "all of 127.0.0.0/8 is loopback: 127.1.2.3 goes direct", CONNECT4, .netns = POD_A,
	  .uid = APP_UID, .dst = "127.1.2.3", .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "a node-wide excluded port goes direct", CONNECT4, .netns = POD_B, .uid = APP_UID,
	  .dst = "10.2.0.7", .port = 22, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "the pod's own excluded port goes direct", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .dst = "10.2.0.7", .port = 9000, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "another pod's excluded port is steered", CONNECT4, .netns = POD_B, .uid = APP_UID,
	  .dst = "10.2.0.7", .port = 9000, .to = "127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a node-wide excluded CIDR goes direct", CONNECT4, .netns = POD_B, .uid = APP_UID,
	  .dst = "169.254.169.254", .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "the pod's own excluded CIDR goes direct", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .dst = "10.111.255.1", .port = 443, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "just outside the pod's excluded CIDR is steered", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .dst = "10.112.0.1", .port = 443, .to = "127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "another pod's excluded CIDR is steered", CONNECT4, .netns = POD_B, .uid = APP_UID,
	  .dst = "10.96.0.1", .port = 443, .to = "127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "no socket storage: refused rather than unmeshed", CONNECT4, .netns = POD_A,
	  .uid = APP_UID, .no_storage = 1, .dst = ORIG_IP, .port = 80, .deny = 1,
	  .stats = STAT(MW_STAT_CONNECT_ERROR), .decision = MW_DEC_CONNECT_REFUSED },

	{ "an MPTCP socket's redirection is noted on the MPTCP socket too", CONNECT4,
	  .netns = POD_A, .uid = APP_UID, .mptcp = 1, .dst = ORIG_IP, .port = 80,
	  .to = "127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a socket bound to a device is unbound when steered to loopback", CONNECT4,
	  .netns = POD_A, .uid = APP_UID, .bound_dev = 1, .dst = ORIG_IP, .port = 80,
	  .to = "127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .want_unbind = 1, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a socket that cannot be unbound is refused at once", CONNECT4, .netns = POD_A,
	  .uid = APP_UID, .bound_dev = 1, .unbind_fails = 1, .dst = ORIG_IP, .port = 80,
	  .deny = 1, .want_mark = MW_ORIG_F_CONNECT, .want_unbind = 1,
	  .stats = STAT(MW_STAT_CONNECT_ERROR), .decision = MW_DEC_CONNECT_REFUSED },
	{ "a bound socket going direct keeps its device", CONNECT4, .netns = POD_A,
	  .uid = APP_UID, .bound_dev = 1, .dst = "10.2.0.7", .port = 22,
	  .stats = STAT(MW_STAT_CONNECT_EXCLUDED), .decision = MW_DEC_CONNECT_EXCLUDED },

	/* connect4: the source addresses steered sockets spread over */
	{ "16 sources: a steered socket is bound to the one its cookie picks", CONNECT4,
	  .netns = POD_A, .uid = APP_UID, .sources = 16, .cookie = 16 * 7 + 5, .dst = ORIG_IP,
	  .port = 80, .to = "127.0.0.1", .to_port = OUT_PORT, .want_src = "127.128.0.6",
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "255 sources: the last is 127.128.0.255", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .sources = 255, .cookie = 254, .dst = ORIG_IP, .port = 80, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_src = "127.128.0.255", .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "one source: no bind, the kernel picks 127.0.0.1", CONNECT4, .netns = POD_A,
	  .uid = APP_UID, .sources = 1, .cookie = 5, .dst = ORIG_IP, .port = 80,
	  .to = "127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a socket the app bound keeps its source", CONNECT4, .netns = POD_A, .uid = APP_UID,
	  .sources = 16, .cookie = 5, .bound = 1, .dst = ORIG_IP, .port = 80, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a connection going direct is not bound", CONNECT4, .netns = POD_B, .uid = APP_UID,
	  .sources = 16, .cookie = 5, .dst = "10.2.0.7", .port = 22,
	  .stats = STAT(MW_STAT_CONNECT_EXCLUDED), .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "the sidecar's own connection is not bound", CONNECT4, .netns = POD_A,
	  .uid = SIDECAR_UID, .sources = 16, .cookie = 5, .dst = ORIG_IP, .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "a dual-stack socket steered over v4-mapped is bound to a v4-mapped source",
	  CONNECT6, .netns = POD_A, .uid = APP_UID, .sources = 16, .cookie = 5,
	  .dst = "::ffff:" ORIG_IP, .port = 80, .to = "::ffff:127.0.0.1", .to_port = OUT_PORT,
	  .want_src = "127.128.0.6", .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },

	/* connect4: include lists */
	{ "include lists: an included port is steered", CONNECT4, .netns = POD_C,
	  .uid = APP_UID, .dst = "10.2.0.7", .port = 5432, .to = "127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "include lists: an included range is steered", CONNECT4, .netns = POD_C,
	  .uid = APP_UID, .dst = "10.50.3.4", .port = 80, .to = "127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "include lists: what they do not name goes direct", CONNECT4, .netns = POD_C,
	  .uid = APP_UID, .dst = "10.51.0.1", .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "include lists: an exclusion wins over an inclusion", CONNECT4, .netns = POD_C,
	  .uid = APP_UID, .dst = "10.2.0.7", .port = 22, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "include lists: another pod's inclusions do not limit this one", CONNECT4,
	  .netns = POD_B, .uid = APP_UID, .dst = "10.51.0.1", .port = 80, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "include lists: an included inbound port is steered to the peer's sidecar",
	  CONNECT4, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_C_IP, .port = 8080,
	  .to = POD_C_IP, .to_port = IN_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_INBOUND),
	  .decision = MW_DEC_CONNECT_INBOUND },
	{ "include lists: an inbound port not included goes direct", CONNECT4,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_C_IP, .port = 8081,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },

	/* connect4: the sidecar's own connections */
	{ "the sidecar's outbound connection is untouched", CONNECT4, .netns = POD_A,
	  .uid = SIDECAR_UID, .dst = ORIG_IP, .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "setresuid(1500, 0, 0): the socket's owner is root, an app's", CONNECT4,
	  .netns = POD_A, .uid = SIDECAR_UID, OWNER(0), .dst = ORIG_IP, .port = 80,
	  .to = "127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "real UID root, effective 1500: the socket is the sidecar's", CONNECT4,
	  .netns = POD_A, .uid = 0, OWNER(SIDECAR_UID), .dst = ORIG_IP, .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "an MPTCP subflow's owner is its MPTCP socket's", CONNECT4, .mptcp = 1,
	  .netns = POD_A, .uid = APP_UID, OWNER(SIDECAR_UID), .dst = ORIG_IP, .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "a pod in a user namespace: its sidecar's mapped UID is the sidecar", CONNECT4,
	  .netns = POD_U, .uid = POD_U_SIDECAR, .dst = ORIG_IP, .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "a pod in a user namespace: host UID 1500 is an app there", CONNECT4,
	  .netns = POD_U, .uid = SIDECAR_UID, .dst = ORIG_IP, .port = 80,
	  .to = "127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "a pod in a user namespace: its sidecar's native IPv6 goes direct", CONNECT6,
	  .netns = POD_U, .uid = POD_U_SIDECAR, .dst = "2001:db8::1", .port = 80 },
	{ "a pod in a user namespace: host UID 1500's native IPv6 is refused", CONNECT6,
	  .netns = POD_U, .uid = SIDECAR_UID, .dst = "2001:db8::1", .port = 80, .deny = 1,
	  .stats = STAT(MW_STAT_CONNECT6_REFUSED), .decision = MW_DEC_CONNECT6_REFUSED },
	{ "another sidecar uid: uid 1500 is an app", CONNECT4, .sidecar_uid = 1600,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = ORIG_IP, .port = 80,
	  .to = "127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "sidecar to a meshed pod on this node: its inbound port", CONNECT4, .netns = POD_A,
	  .uid = SIDECAR_UID, .dst = POD_B_IP, .port = 8080, .to = POD_B_IP, .to_port = IN_PORT,
	  .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_INBOUND),
	  .decision = MW_DEC_CONNECT_INBOUND },
	{ "sidecar to a node-wide excluded inbound port goes direct", CONNECT4, .netns = POD_A,
	  .uid = SIDECAR_UID, .dst = POD_B_IP, .port = 8443,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "sidecar to the peer's own excluded inbound port goes direct", CONNECT4,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP, .port = 9090,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "the peer's excluded inbound port is its own", CONNECT4, .netns = POD_B,
	  .uid = SIDECAR_UID, .dst = POD_A_IP, .port = 9090, .to = POD_A_IP, .to_port = IN_PORT,
	  .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_INBOUND),
	  .decision = MW_DEC_CONNECT_INBOUND },
	{ "sidecar straight to the peer sidecar's inbound port: refused", CONNECT4,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP, .port = IN_PORT, .deny = 1,
	  .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "sidecar straight to its own pod's inbound port: refused", CONNECT4,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_A_IP, .port = IN_PORT, .deny = 1,
	  .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "app straight to its sidecar's outbound port on loopback: refused", CONNECT4,
	  .netns = POD_A, .uid = APP_UID, .dst = "127.0.0.1", .port = OUT_PORT, .deny = 1,
	  .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "app straight to its sidecar's inbound port on its pod address: refused", CONNECT4,
	  .netns = POD_A, .uid = APP_UID, .dst = POD_A_IP, .port = IN_PORT, .deny = 1,
	  .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "a capture port elsewhere (not a pod here) is an ordinary destination", CONNECT4,
	  .netns = POD_A, .uid = APP_UID, .dst = ORIG_IP, .port = IN_PORT, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "sidecar to its own pod's app is untouched", CONNECT4, .netns = POD_A,
	  .uid = SIDECAR_UID, .dst = POD_A_IP, .port = 8080,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "with acceleration, that hop gets no socket storage (sockops tells it by its owner)",
	  CONNECT4, .accel = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_A_IP, .port = 8080,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "with acceleration, sidecar to app over loopback: no socket storage either", CONNECT4,
	  .accel = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = "127.0.0.1", .port = 8080,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "sidecar straight to its own outbound port: refused, with acceleration too", CONNECT4,
	  .accel = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = "127.0.0.1", .port = OUT_PORT,
	  .deny = 1, .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "sidecar inbound without socket storage: refused", CONNECT4, .netns = POD_A,
	  .uid = SIDECAR_UID, .no_storage = 1, .dst = POD_B_IP, .port = 8080, .deny = 1,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_ERROR),
	  .decision = MW_DEC_CONNECT_REFUSED },

	/* connect6 */
	{ "a dual-stack app's v4-mapped connect goes to its sidecar", CONNECT6, .netns = POD_A,
	  .uid = APP_UID, .dst = "::ffff:93.184.216.34", .port = 80, .to = "::ffff:127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "v4-mapped to an excluded CIDR goes direct", CONNECT6, .netns = POD_B, .uid = APP_UID,
	  .dst = "::ffff:169.254.1.1", .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "native IPv6 from a meshed app is refused", CONNECT6, .netns = POD_A, .uid = APP_UID,
	  .dst = "2001:db8::1", .port = 80, .deny = 1, .stats = STAT(MW_STAT_CONNECT6_REFUSED),
	  .decision = MW_DEC_CONNECT6_REFUSED },
	{ "native IPv6 with interception.ipv6 = allow goes direct", CONNECT6, .ipv6_allow = 1,
	  .netns = POD_A, .uid = APP_UID, .dst = "2001:db8::1", .port = 80 },
	{ "::1 goes direct", CONNECT6, .netns = POD_A, .uid = APP_UID, .dst = "::1", .port = 80 },
	{ "the sidecar's native IPv6 goes direct", CONNECT6, .netns = POD_A, .uid = SIDECAR_UID,
	  .dst = "2001:db8::1", .port = 80 },
	{ "native IPv6 to an excluded port goes direct", CONNECT6, .netns = POD_A,
	  .uid = APP_UID, .dst = "2001:db8::1", .port = 22 },
	{ "native IPv6 from a namespace not meshed goes direct", CONNECT6, .netns = UNMESHED,
	  .uid = APP_UID, .dst = "2001:db8::1", .port = 80 },
	{ "native IPv6 UDP goes direct", CONNECT6, .netns = POD_A, .uid = APP_UID, .udp = 1,
	  .dst = "2001:db8::1", .port = 53 },

	/* connect6, native IPv6 with interception.ipv6 = "intercept" */
	{ "intercept: an app's native IPv6 connect goes to its sidecar at [::1]", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .dst = ORIG_IP6, .port = 80,
	  .to = "::1", .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept: ::1 goes direct", CONNECT6, .intercept6 = 1, .netns = POD_A,
	  .uid = APP_UID, .dst = "::1", .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: a node-wide excluded port goes direct", CONNECT6, .intercept6 = 1,
	  .netns = POD_B, .uid = APP_UID, .dst = ORIG_IP6, .port = 22,
	  .stats = STAT(MW_STAT_CONNECT_EXCLUDED), .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: the pod's own excluded port goes direct", CONNECT6, .intercept6 = 1,
	  .netns = POD_A, .uid = APP_UID, .dst = ORIG_IP6, .port = 9000,
	  .stats = STAT(MW_STAT_CONNECT_EXCLUDED), .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: a node-wide excluded IPv6 CIDR goes direct", CONNECT6, .intercept6 = 1,
	  .netns = POD_B, .uid = APP_UID, .dst = "2001:db8:ee:5::9", .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_EXCLUDED), .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: the pod's own excluded IPv6 CIDR goes direct", CONNECT6, .intercept6 = 1,
	  .netns = POD_A, .uid = APP_UID, .dst = "fd00:96::10", .port = 443,
	  .stats = STAT(MW_STAT_CONNECT_EXCLUDED), .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: just outside the pod's IPv6 CIDR is steered", CONNECT6, .intercept6 = 1,
	  .netns = POD_A, .uid = APP_UID, .dst = "fd00:96:0:1::10", .port = 443, .to = "::1",
	  .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept: another pod's IPv6 CIDR is steered", CONNECT6, .intercept6 = 1,
	  .netns = POD_B, .uid = APP_UID, .dst = "fd00:96::10", .port = 443, .to = "::1",
	  .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept: the sidecar's native IPv6 goes direct", CONNECT6, .intercept6 = 1,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = ORIG_IP6, .port = 80,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },

	/* connect6, same-node inbound over native IPv6 ("intercept") */
	{ "intercept: sidecar to a meshed pod's IPv6 address on this node: its inbound port",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP6,
	  .port = 8080, .to = POD_B_IP6, .to_port = IN_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_INBOUND),
	  .decision = MW_DEC_CONNECT_INBOUND },
	{ "intercept: sidecar to a node-wide excluded inbound port over IPv6 goes direct",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP6,
	  .port = 8443, .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: sidecar to the peer's own excluded inbound port over IPv6 goes direct",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP6,
	  .port = 9090, .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: the peer's excluded inbound port over IPv6 is its own", CONNECT6,
	  .intercept6 = 1, .netns = POD_B, .uid = SIDECAR_UID, .dst = POD_A_IP6, .port = 9090,
	  .to = POD_A_IP6, .to_port = IN_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_INBOUND),
	  .decision = MW_DEC_CONNECT_INBOUND },
	{ "intercept: include lists, inbound: a port not included reaches the app over IPv6",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_C_IP6,
	  .port = 9999, .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: include lists, inbound: an included port goes to the inbound sidecar",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_C_IP6,
	  .port = 8080, .to = POD_C_IP6, .to_port = IN_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_INBOUND),
	  .decision = MW_DEC_CONNECT_INBOUND },
	{ "intercept: sidecar to its own pod's IPv6 address is untouched", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_A_IP6, .port = 8080,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "intercept: sidecar to its app over ::1 is untouched", CONNECT6, .intercept6 = 1,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = "::1", .port = 8080,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "intercept, with acceleration: sidecar to its app over ::1, no socket storage",
	  CONNECT6, .intercept6 = 1, .accel = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = "::1",
	  .port = 8080, .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "intercept, with acceleration: sidecar to its own pod's IPv6 address, no socket storage",
	  CONNECT6, .intercept6 = 1, .accel = 1, .netns = POD_A, .uid = SIDECAR_UID,
	  .dst = POD_A_IP6, .port = 8080, .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "intercept, with acceleration: a dual-stack sidecar to its app over ::ffff:127.0.0.1, no socket storage",
	  CONNECT6, .intercept6 = 1, .accel = 1, .netns = POD_A, .uid = SIDECAR_UID,
	  .dst = "::ffff:127.0.0.1", .port = 8080, .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "intercept: sidecar straight to the peer sidecar's IPv6 inbound port: refused",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP6,
	  .port = IN_PORT, .deny = 1, .stats = STAT(MW_STAT_LOOP_REFUSED),
	  .decision = MW_DEC_LOOP_REFUSED },
	{ "intercept: app straight to the inbound port on its pod's IPv6 address: refused",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .dst = POD_A_IP6,
	  .port = IN_PORT, .deny = 1, .stats = STAT(MW_STAT_LOOP_REFUSED),
	  .decision = MW_DEC_LOOP_REFUSED },
	{ "intercept: sidecar inbound over IPv6 without socket storage: refused", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .no_storage = 1,
	  .dst = POD_B_IP6, .port = 8080, .deny = 1,
	  .stats = STAT(MW_STAT_CONNECT_SIDECAR) | STAT(MW_STAT_CONNECT_ERROR),
	  .decision = MW_DEC_CONNECT_REFUSED },
	{ "refuse: the sidecar to a meshed pod's IPv6 address goes direct, as before", CONNECT6,
	  .netns = POD_A, .uid = SIDECAR_UID, .dst = POD_B_IP6, .port = 8080 },
	{ "intercept: a namespace not meshed is untouched", CONNECT6, .intercept6 = 1,
	  .netns = UNMESHED, .uid = APP_UID, .dst = ORIG_IP6, .port = 80 },
	{ "intercept: UDP is untouched", CONNECT6, .intercept6 = 1, .netns = POD_A,
	  .uid = APP_UID, .udp = 1, .dst = ORIG_IP6, .port = 53 },
	{ "intercept: app straight to [::1]:outbound port is refused", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .dst = "::1", .port = OUT_PORT,
	  .deny = 1, .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "intercept: the sidecar straight to its [::1]:inbound port is refused", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = SIDECAR_UID, .dst = "::1", .port = IN_PORT,
	  .deny = 1, .stats = STAT(MW_STAT_LOOP_REFUSED), .decision = MW_DEC_LOOP_REFUSED },
	{ "refuse: [::1]:outbound port is loopback and goes direct, as before", CONNECT6,
	  .netns = POD_A, .uid = APP_UID, .dst = "::1", .port = OUT_PORT },
	{ "intercept: no socket storage: refused rather than unmeshed", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .no_storage = 1, .dst = ORIG_IP6,
	  .port = 80, .deny = 1, .stats = STAT(MW_STAT_CONNECT_ERROR),
	  .decision = MW_DEC_CONNECT_REFUSED },
	{ "intercept: an MPTCP socket's redirection is noted on the MPTCP socket too",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .mptcp = 1, .dst = ORIG_IP6,
	  .port = 80, .to = "::1", .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept: a socket bound to a device is unbound when steered to ::1", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .bound_dev = 1, .dst = ORIG_IP6,
	  .port = 80, .to = "::1", .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .want_unbind = 1, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept: a socket that cannot be unbound is refused at once", CONNECT6,
	  .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .bound_dev = 1, .unbind_fails = 1,
	  .dst = ORIG_IP6, .port = 80, .deny = 1, .want_mark6 = MW_ORIG_F_CONNECT,
	  .want_unbind = 1, .stats = STAT(MW_STAT_CONNECT_ERROR),
	  .decision = MW_DEC_CONNECT_REFUSED },
	{ "intercept, include lists: an included port is steered", CONNECT6, .intercept6 = 1,
	  .netns = POD_C, .uid = APP_UID, .dst = ORIG_IP6, .port = 5432, .to = "::1",
	  .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept, include lists: a port and address not included go direct",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = ORIG_IP6,
	  .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept, include lists: an address in an included IPv6 range is steered",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = "fd00:50:1::7",
	  .port = 80, .to = "::1", .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept, include lists: the range's first and last addresses are in it",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID,
	  .dst = "fd00:50:ffff:ffff:ffff:ffff:ffff:ffff", .port = 80, .to = "::1",
	  .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept, include lists: the address just past the IPv6 range goes direct",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = "fd00:51::",
	  .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept, include lists: an IPv6 exclusion wins over an included range",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = "fd00:50:9::7",
	  .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept, include lists: the IPv4 range does not include its v6 look-alike",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = "::10.50.0.7",
	  .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept, include lists: a v4-mapped address uses the IPv4 ranges", CONNECT6,
	  .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = "::ffff:10.50.0.7",
	  .port = 80, .to = "::ffff:127.0.0.1", .to_port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT, .stats = STAT(MW_STAT_CONNECT_REDIRECTED),
	  .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept, include lists: another pod's IPv6 ranges do not limit one without",
	  CONNECT6, .intercept6 = 1, .netns = POD_B, .uid = APP_UID, .dst = "fd00:50:1::7",
	  .port = 80, .to = "::1", .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "intercept, include lists: another pod's included IPv6 range is not this one's",
	  CONNECT6, .intercept6 = 1, .netns = POD_C, .uid = APP_UID, .dst = "fd00:51::7",
	  .port = 80, .stats = STAT(MW_STAT_CONNECT_EXCLUDED),
	  .decision = MW_DEC_CONNECT_EXCLUDED },
	{ "intercept: v4-mapped is steered as before", CONNECT6, .intercept6 = 1,
	  .netns = POD_A, .uid = APP_UID, .dst = "::ffff:93.184.216.34", .port = 80,
	  .to = "::ffff:127.0.0.1", .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },

	/* getpeername: the redirection stays invisible */
	{ "getpeername of a redirected socket answers the dialled address", GETPEERNAME4,
	  .netns = POD_A, .mark = MW_ORIG_F_CONNECT, .dst = "127.0.0.1", .port = OUT_PORT,
	  .to = ORIG_IP, .to_port = 80, .want_mark = MW_ORIG_F_CONNECT },
	{ "getpeername of a socket not redirected is the kernel's", GETPEERNAME4,
	  .netns = POD_A, .dst = "10.2.0.7", .port = 80 },
	{ "getpeername of the sidecar's accepted socket is the kernel's", GETPEERNAME4,
	  .netns = POD_A, .mark = MW_ORIG_F_ACCEPTED, .dst = "127.0.0.1", .port = 40000,
	  .want_mark = MW_ORIG_F_ACCEPTED },
	{ "getpeername of a redirected UDP socket is the kernel's", GETPEERNAME4, .udp = 1,
	  .netns = POD_A, .mark = MW_ORIG_F_CONNECT, .dst = "127.0.0.1", .port = OUT_PORT,
	  .want_mark = MW_ORIG_F_CONNECT },
	{ "getpeername6 of a v4-mapped redirected socket answers the dialled address",
	  GETPEERNAME6, .netns = POD_A, .mark = MW_ORIG_F_CONNECT, .dst = "::ffff:127.0.0.1",
	  .port = OUT_PORT, .to = "::ffff:93.184.216.34", .to_port = 80,
	  .want_mark = MW_ORIG_F_CONNECT },
	{ "getpeername6 of a native IPv6 peer is the kernel's", GETPEERNAME6, .netns = POD_A,
	  .mark = MW_ORIG_F_CONNECT, .dst = "2001:db8::1", .port = 80,
	  .want_mark = MW_ORIG_F_CONNECT },

	/* DNS capture: UDP datagrams (sendmsg4) */
	{ "dns: an app's query goes to the DNS proxy, the resolver noted", SENDMSG4,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER, .port = 53,
	  .to = "127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: a loopback resolver is captured too", SENDMSG4, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .dst = "127.0.0.53", .port = 53, .to = "127.0.0.1",
	  .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: another UDP port is untouched", SENDMSG4, .netns = POD_D, .uid = APP_UID,
	  .udp = 1, .dst = RESOLVER, .port = 5353 },
	{ "dns: a pod without DNS capture is untouched", SENDMSG4, .netns = POD_A,
	  .uid = APP_UID, .udp = 1, .dst = RESOLVER, .port = 53 },
	{ "dns: a namespace not meshed is untouched", SENDMSG4, .netns = UNMESHED,
	  .uid = APP_UID, .udp = 1, .dst = RESOLVER, .port = 53 },
	{ "dns: the sidecar's own (upstream) query is untouched", SENDMSG4, .netns = POD_D,
	  .uid = SIDECAR_UID, .udp = 1, .dst = RESOLVER, .port = 53 },
	{ "dns: a listed resolver is captured", SENDMSG4, .dns_servers = 1, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .dst = RESOLVER, .port = 53, .to = "127.0.0.1",
	  .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: a resolver not listed in [dns] servers is untouched", SENDMSG4,
	  .dns_servers = 1, .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER2,
	  .port = 53 },
	{ "dns: no socket storage: the query is refused, never sent direct", SENDMSG4,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .no_storage = 1, .dst = RESOLVER,
	  .port = 53, .deny = 1, .stats = STAT(MW_STAT_DNS_ERROR),
	  .decision = MW_DEC_DNS_REFUSED },
	{ "dns: a socket bound to a device is unbound when sent to loopback", SENDMSG4,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .bound_dev = 1, .dst = RESOLVER,
	  .port = 53, .to = "127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .want_unbind = 1, .stats = STAT(MW_STAT_DNS_REDIRECTED),
	  .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: a ping socket (not UDP) is untouched", SENDMSG4, .netns = POD_D,
	  .uid = APP_UID, .icmp = 1, .dst = RESOLVER, .port = 53 },
	/* UDP: the kernel has no cast to read a UDP socket's owner, so the
	   caller's real UID decides (docs/hardening.md), and trace names it. */
	{ "dns: UDP decides by the caller's UID: setresuid(0, 1500, 0) is captured", SENDMSG4,
	  .netns = POD_D, .uid = 0, OWNER(SIDECAR_UID), .udp = 1, .dst = RESOLVER, .port = 53,
	  .to = "127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: UDP decides by the caller's UID: setresuid(1500, 0, 0) goes direct", SENDMSG4,
	  .netns = POD_D, .uid = SIDECAR_UID, OWNER(0), .udp = 1, .dst = RESOLVER, .port = 53 },

	/* DNS capture: connected UDP sockets and TCP (connect4) */
	{ "dns: a UDP socket connected to the resolver is connected to the proxy", CONNECT4,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER, .port = 53,
	  .to = "127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: a UDP socket connected elsewhere forgets its resolver", CONNECT4,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .mark = MW_ORIG_F_DNS, .dst = "10.2.0.7",
	  .port = 5000 },
	{ "dns: DNS over TCP goes to the DNS proxy, for SO_ORIGINAL_DST too", CONNECT4,
	  .netns = POD_D, .uid = APP_UID, .dst = RESOLVER, .port = 53, .to = "127.0.0.1",
	  .to_port = DNS_PORT, .want_mark = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: other TCP of a DNS-captured pod goes to the outbound port", CONNECT4,
	  .netns = POD_D, .uid = APP_UID, .dst = ORIG_IP, .port = 80, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "dns: TCP to port 53 of a pod without DNS capture is ordinary outbound", CONNECT4,
	  .netns = POD_B, .uid = APP_UID, .dst = RESOLVER, .port = 53, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "dns: the sidecar's TCP query goes where it was sent", CONNECT4, .netns = POD_D,
	  .uid = SIDECAR_UID, .dst = RESOLVER, .port = 53, .stats = STAT(MW_STAT_CONNECT_SIDECAR) },
	{ "dns: TCP decides by the socket's owner: setresuid(1500, 0, 0) is captured, trace names root",
	  CONNECT4, .netns = POD_D, .uid = SIDECAR_UID, OWNER(0), .dst = RESOLVER, .port = 53,
	  .to = "127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns: TCP to a resolver not listed is ordinary outbound", CONNECT4, .dns_servers = 1,
	  .netns = POD_D, .uid = APP_UID, .dst = RESOLVER2, .port = 53, .to = "127.0.0.1",
	  .to_port = OUT_PORT, .want_mark = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "dns: a dual-stack socket's v4-mapped query is connected to the proxy", CONNECT6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = "::ffff:10.96.0.10", .port = 53,
	  .to = "::ffff:127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },

	/* DNS capture: the proxy's answers come from the resolver */
	{ "dns: recvmsg of the proxy's answer reports the resolver", RECVMSG4, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .mark = MW_ORIG_F_DNS, .dst = "127.0.0.1",
	  .port = DNS_PORT, .to = ORIG_IP, .to_port = ORIG_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_RESTORED), .decision = MW_DEC_DNS_RESTORED },
	{ "dns: a datagram from anywhere else keeps its source", RECVMSG4, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .mark = MW_ORIG_F_DNS, .dst = "10.2.0.7",
	  .port = DNS_PORT, .want_mark = MW_ORIG_F_DNS },
	{ "dns: another loopback port keeps its source", RECVMSG4, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .mark = MW_ORIG_F_DNS, .dst = "127.0.0.1",
	  .port = 5353, .want_mark = MW_ORIG_F_DNS },
	{ "dns: a socket that sent no captured query reads the kernel's source", RECVMSG4,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = "127.0.0.1", .port = DNS_PORT },
	{ "dns: recvmsg6 of a v4-mapped answer reports the resolver", RECVMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .mark = MW_ORIG_F_DNS,
	  .dst = "::ffff:127.0.0.1", .port = DNS_PORT, .to = "::ffff:93.184.216.34",
	  .to_port = ORIG_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_RESTORED), .decision = MW_DEC_DNS_RESTORED },
	{ "dns: recvmsg6 of a native IPv6 datagram keeps its source", RECVMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .mark = MW_ORIG_F_DNS,
	  .dst = "::1", .port = DNS_PORT, .want_mark = MW_ORIG_F_DNS },
	{ "dns: getpeername of a UDP socket connected to the proxy answers the resolver",
	  GETPEERNAME4, .netns = POD_D, .udp = 1, .mark = MW_ORIG_F_DNS, .dst = "127.0.0.1",
	  .port = DNS_PORT, .to = ORIG_IP, .to_port = ORIG_PORT, .want_mark = MW_ORIG_F_DNS },
	{ "dns: getpeername of a TCP socket marked for DNS only is the kernel's", GETPEERNAME4,
	  .netns = POD_D, .mark = MW_ORIG_F_DNS, .dst = "127.0.0.1", .port = DNS_PORT,
	  .want_mark = MW_ORIG_F_DNS },
	{ "getpeername6 of a native IPv6 redirected socket answers the dialled address",
	  GETPEERNAME6, .netns = POD_A, .mark6 = MW_ORIG_F_CONNECT, .dst = "::1",
	  .port = OUT_PORT, .to = ORIG_IP6, .to_port = ORIG_PORT,
	  .want_mark6 = MW_ORIG_F_CONNECT },
	{ "getpeername6 of the sidecar's accepted IPv6 socket is the kernel's", GETPEERNAME6,
	  .netns = POD_A, .mark6 = MW_ORIG_F_ACCEPTED, .dst = "::1", .port = 40000,
	  .want_mark6 = MW_ORIG_F_ACCEPTED },
	{ "getpeername6 of a redirected IPv6 UDP socket is the kernel's", GETPEERNAME6,
	  .udp = 1, .netns = POD_A, .mark6 = MW_ORIG_F_CONNECT, .dst = "::1", .port = OUT_PORT,
	  .want_mark6 = MW_ORIG_F_CONNECT },

	/* DNS capture over native IPv6: [::1]:DNS_PORT, whatever interception.ipv6 says */
	{ "dns6: a query to an IPv6 resolver goes to the DNS proxy at [::1]", SENDMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53, .to = "::1",
	  .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: with interception.ipv6 = pass too", SENDMSG6, .ipv6_allow = 1,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53, .to = "::1",
	  .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: with interception.ipv6 = intercept too", SENDMSG6, .intercept6 = 1,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53, .to = "::1",
	  .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: a ::1 resolver is captured too", SENDMSG6, .netns = POD_D, .uid = APP_UID,
	  .udp = 1, .dst = "::1", .port = 53, .to = "::1", .to_port = DNS_PORT,
	  .want_mark6 = MW_ORIG_F_DNS, .stats = STAT(MW_STAT_DNS_REDIRECTED),
	  .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: a datagram already to the proxy's port is untouched", SENDMSG6, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .dst = "::1", .port = DNS_PORT },
	{ "dns6: another UDP port is untouched", SENDMSG6, .netns = POD_D, .uid = APP_UID,
	  .udp = 1, .dst = RESOLVER6, .port = 5353 },
	{ "dns6: a pod without DNS capture is untouched", SENDMSG6, .netns = POD_A,
	  .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53 },
	{ "dns6: a namespace not meshed is untouched", SENDMSG6, .netns = UNMESHED,
	  .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53 },
	{ "dns6: the sidecar's own (upstream) query is untouched", SENDMSG6, .netns = POD_D,
	  .uid = SIDECAR_UID, .udp = 1, .dst = RESOLVER6, .port = 53 },
	{ "dns6: a listed IPv6 resolver is captured", SENDMSG6, .dns_servers = 1,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53, .to = "::1",
	  .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: an IPv6 resolver not listed in [dns] servers is untouched", SENDMSG6,
	  .dns_servers = 1, .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER6_2,
	  .port = 53 },
	{ "dns6: an IPv6 resolver whose last word is a listed IPv4 one is not listed", SENDMSG6,
	  .dns_servers = 1, .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = "fd00::a60:a",
	  .port = 53 },
	{ "dns6: no socket storage: the query is refused, never sent direct", SENDMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .no_storage = 1, .dst = RESOLVER6,
	  .port = 53, .deny = 1, .stats = STAT(MW_STAT_DNS_ERROR),
	  .decision = MW_DEC_DNS_REFUSED },
	{ "dns6: a socket bound to a device is unbound when sent to [::1]", SENDMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .bound_dev = 1, .dst = RESOLVER6,
	  .port = 53, .to = "::1", .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .want_unbind = 1, .stats = STAT(MW_STAT_DNS_REDIRECTED),
	  .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: a ping socket (not UDP) is untouched", SENDMSG6, .netns = POD_D,
	  .uid = APP_UID, .icmp = 1, .dst = RESOLVER6, .port = 53 },
	{ "dns6: a dual-stack socket's v4-mapped query goes to ::ffff:127.0.0.1", SENDMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = "::ffff:10.96.0.10", .port = 53,
	  .to = "::ffff:127.0.0.1", .to_port = DNS_PORT, .want_mark = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: a v4-mapped resolver not listed in [dns] servers is untouched", SENDMSG6,
	  .dns_servers = 1, .netns = POD_D, .uid = APP_UID, .udp = 1,
	  .dst = "::ffff:10.96.0.11", .port = 53 },
	{ "dns6: the sidecar's v4-mapped query is untouched", SENDMSG6, .netns = POD_D,
	  .uid = SIDECAR_UID, .udp = 1, .dst = "::ffff:10.96.0.10", .port = 53 },
	{ "dns6: a UDP socket connected to an IPv6 resolver is connected to the proxy",
	  CONNECT6, .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = RESOLVER6, .port = 53,
	  .to = "::1", .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: a UDP socket connected elsewhere forgets its IPv6 resolver", CONNECT6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .mark6 = MW_ORIG_F_DNS, .dst = ORIG_IP6,
	  .port = 5000 },
	{ "dns6: the sidecar's connected UDP socket goes where it was sent", CONNECT6,
	  .netns = POD_D, .uid = SIDECAR_UID, .udp = 1, .dst = RESOLVER6, .port = 53 },
	{ "dns6: DNS over TCP to an IPv6 resolver goes to the proxy (ipv6 refuse)", CONNECT6,
	  .netns = POD_D, .uid = APP_UID, .dst = RESOLVER6, .port = 53, .to = "::1",
	  .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: DNS over TCP to an IPv6 resolver goes to the proxy (ipv6 pass)", CONNECT6,
	  .ipv6_allow = 1, .netns = POD_D, .uid = APP_UID, .dst = RESOLVER6, .port = 53,
	  .to = "::1", .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: DNS over TCP to an IPv6 resolver goes to the proxy (ipv6 intercept)", CONNECT6,
	  .intercept6 = 1, .netns = POD_D, .uid = APP_UID, .dst = RESOLVER6, .port = 53,
	  .to = "::1", .to_port = DNS_PORT, .want_mark6 = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: an MPTCP socket's DNS over TCP is noted on the MPTCP socket too", CONNECT6,
	  .intercept6 = 1, .mptcp = 1, .netns = POD_D, .uid = APP_UID, .dst = RESOLVER6,
	  .port = 53, .to = "::1", .to_port = DNS_PORT,
	  .want_mark6 = MW_ORIG_F_CONNECT | MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_REDIRECTED), .decision = MW_DEC_DNS_REDIRECTED },
	{ "dns6: the sidecar's TCP query to an IPv6 resolver goes where it was sent", CONNECT6,
	  .netns = POD_D, .uid = SIDECAR_UID, .dst = RESOLVER6, .port = 53 },
	{ "dns6: TCP to an IPv6 resolver not listed is native IPv6 (refused)", CONNECT6,
	  .dns_servers = 1, .netns = POD_D, .uid = APP_UID, .dst = RESOLVER6_2, .port = 53,
	  .deny = 1, .stats = STAT(MW_STAT_CONNECT6_REFUSED),
	  .decision = MW_DEC_CONNECT6_REFUSED },
	{ "dns6: TCP to port 53 of a pod without DNS capture is native IPv6 (intercept)",
	  CONNECT6, .intercept6 = 1, .netns = POD_A, .uid = APP_UID, .dst = "fd00:97::a",
	  .port = 53, .to = "::1", .to_port = OUT_PORT, .want_mark6 = MW_ORIG_F_CONNECT,
	  .stats = STAT(MW_STAT_CONNECT_REDIRECTED), .decision = MW_DEC_CONNECT_REDIRECTED },
	{ "dns6: no socket storage: DNS over TCP refused", CONNECT6, .netns = POD_D,
	  .uid = APP_UID, .no_storage = 1, .dst = RESOLVER6, .port = 53, .deny = 1,
	  .stats = STAT(MW_STAT_DNS_ERROR), .decision = MW_DEC_DNS_REFUSED },
	{ "dns6: recvmsg6 of the proxy's [::1] answer reports the IPv6 resolver", RECVMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .mark6 = MW_ORIG_F_DNS, .dst = "::1",
	  .port = DNS_PORT, .to = ORIG_IP6, .to_port = ORIG_PORT, .want_mark6 = MW_ORIG_F_DNS,
	  .stats = STAT(MW_STAT_DNS_RESTORED), .decision = MW_DEC_DNS_RESTORED },
	{ "dns6: a datagram from another IPv6 address keeps its source", RECVMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .mark6 = MW_ORIG_F_DNS,
	  .dst = "fd00:1::7", .port = DNS_PORT, .want_mark6 = MW_ORIG_F_DNS },
	{ "dns6: another [::1] port keeps its source", RECVMSG6, .netns = POD_D,
	  .uid = APP_UID, .udp = 1, .mark6 = MW_ORIG_F_DNS, .dst = "::1", .port = 5353,
	  .want_mark6 = MW_ORIG_F_DNS },
	{ "dns6: a socket that sent no captured IPv6 query reads the kernel's source", RECVMSG6,
	  .netns = POD_D, .uid = APP_UID, .udp = 1, .dst = "::1", .port = DNS_PORT },
	{ "dns6: getpeername6 of a UDP socket connected to the proxy answers the IPv6 resolver",
	  GETPEERNAME6, .netns = POD_D, .udp = 1, .mark6 = MW_ORIG_F_DNS, .dst = "::1",
	  .port = DNS_PORT, .to = ORIG_IP6, .to_port = ORIG_PORT, .want_mark6 = MW_ORIG_F_DNS },
	{ "dns6: getpeername6 of a TCP socket marked for DNS only is the kernel's", GETPEERNAME6,
	  .netns = POD_D, .mark6 = MW_ORIG_F_DNS, .dst = "::1", .port = DNS_PORT,
	  .want_mark6 = MW_ORIG_F_DNS },
};

/* The hook a case's event must name. */
static __u8 event_hook(const struct sock_case *c)
{
	switch (c->hook) {
	case CONNECT6:
		return MW_HOOK_CONNECT6;
	case SENDMSG4:
		return MW_HOOK_SENDMSG4;
	case SENDMSG6:
		return MW_HOOK_SENDMSG6;
	case RECVMSG4:
		return MW_HOOK_RECVMSG4;
	case RECVMSG6:
		return MW_HOOK_RECVMSG6;
	default:
		return MW_HOOK_CONNECT4;
	}
}

static int is6(const struct sock_case *c)
{
	return c->hook == CONNECT6 || c->hook == GETPEERNAME6 || c->hook == SENDMSG6 ||
	       c->hook == RECVMSG6;
}

/* A native IPv6 destination (not v4-mapped): events carry no address for it. */
static int native6(const struct sock_case *c)
{
	__u32 w[4];

	if (!is6(c))
		return 0;
	mw_test_ip6(c->dst, w);
	return !mw_is_v4mapped(w[0], w[1], w[2]);
}

/* Its last word for a v4-mapped address, else the IPv4 address. */
static __u32 ip4_of(const struct sock_case *c, const char *text)
{
	__u32 w[4];

	if (!is6(c))
		return mw_test_ip4(text);
	mw_test_ip6(text, w);
	return w[3];
}

/*
 * An event's address: for a native IPv6 case the four words of text's
 * address, else its IPv4 address (ip4_of) in word 0 and zeros; text NULL:
 * none (all zero).
 */
static void expect_event_addr(struct mw_test_run *run, const struct sock_case *c,
			      const __u32 *got, const char *text, const char *what)
{
	__u32 want[4] = { 0, 0, 0, 0 };

	if (text && native6(c))
		mw_test_ip6(text, want);
	else if (text)
		want[0] = ip4_of(c, text);
	for (int i = 0; i < 4; i++)
		MW_EXPECT_EQ(run, got[i], want[i], what);
}

static void run_case(struct mw_test_run *run, const struct sock_case *c)
{
	struct bpf_sock sk = {
		.type = c->udp || c->icmp ? SOCK_DGRAM : MW_SOCK_STREAM,
		.protocol = c->udp ? IPPROTO_UDP_ : c->icmp ? IPPROTO_ICMP_ : IPPROTO_TCP_,
		.bound_dev_if = c->bound_dev ? 2 : 0,
	};
	/* Socket storage is keyed by pointer; the owner is read as from a struct sock. */
	struct sock___mw mptcp = { .sk_uid.val = c->owner_set ? c->owner : c->uid };
	struct sock___mw tcp = { .sk_uid.val = c->owner_set ? c->owner : c->uid };
	struct bpf_sock_addr ctx = {
		.family = is6(c) ? MW_AF_INET6 : MW_AF_INET,
		.type = sk.type,
		.protocol = sk.protocol,
		.user_port = bpf_htons(c->port),
		.sk = &sk,
	};
	struct bpf_sock_addr before;
	const char *to = c->to ? c->to : c->dst;
	struct mw_orig4 *orig;
	struct mw_orig6 *orig6;
	int verdict = -1;

	node();
	mw_test_settings(c->accel,
			 c->intercept6 ? MW_IPV6_INTERCEPT : c->ipv6_allow ? MW_IPV6_PASS : MW_IPV6_REFUSE,
			 c->sidecar_uid ? c->sidecar_uid : SIDECAR_UID);
	mw_cfg.dns_servers = c->dns_servers;
	mw_cfg.out_sources = c->sources ? c->sources : 1;
	mw_test_socket_cookie = c->cookie;
	if (c->bound)
		sk.src_port = 41000;
	mw_test_task.netns_cookie = c->netns;
	mw_test_task.uid = c->uid;
	mw_test_task.pid = 4242;
	mw_test_no_sk_storage = c->no_storage;
	mw_test_mptcp_sock = c->mptcp ? &mptcp : NULL;
	/* An MPTCP subflow's own owner is another: the MPTCP socket's must count. */
	if (c->mptcp)
		tcp.sk_uid.val = 4242;
	/* As the kernel's cast: a UDP or ping socket is no TCP socket. */
	mw_test_tcp_sock = sk.protocol == IPPROTO_TCP_ ? &tcp : NULL;
	mw_test_setsockopt_error = c->unbind_fails ? -1 : 0;
	if (is6(c))
		mw_test_ip6(c->dst, ctx.user_ip6);
	else
		ctx.user_ip4 = mw_test_ip4(c->dst);
	if (c->mark)
		mw_test_mark(&sk, c->mark);
	if (c->mark6)
		mw_test_mark6(&sk, c->mark6);
	before = ctx;

	switch (c->hook) {
	case CONNECT4:
		verdict = mw_sock4_connect(&ctx);
		break;
	case CONNECT6:
		verdict = mw_sock6_connect(&ctx);
		break;
	case GETPEERNAME4:
		verdict = mw_sock4_getpeername(&ctx);
		break;
	case GETPEERNAME6:
		verdict = mw_sock6_getpeername(&ctx);
		break;
	case SENDMSG4:
		verdict = mw_sock4_sendmsg(&ctx);
		break;
	case SENDMSG6:
		verdict = mw_sock6_sendmsg(&ctx);
		break;
	case RECVMSG4:
		verdict = mw_sock4_recvmsg(&ctx);
		break;
	case RECVMSG6:
		verdict = mw_sock6_recvmsg(&ctx);
		break;
	}

	MW_EXPECT_EQ(run, verdict, c->deny ? MW_DENY : MW_ALLOW, "verdict");
	if (is6(c)) {
		__u32 want[4];

		mw_test_ip6(to, want);
		for (int i = 0; i < 4; i++)
			MW_EXPECT_EQ(run, bpf_ntohl(ctx.user_ip6[i]), bpf_ntohl(want[i]),
				     "user_ip6 word (host order)");
		MW_EXPECT_EQ(run, ctx.user_ip4, before.user_ip4, "user_ip4 untouched");
	} else {
		MW_EXPECT_EQ(run, bpf_ntohl(ctx.user_ip4), bpf_ntohl(mw_test_ip4(to)),
			     "user_ip4 (host order)");
		for (int i = 0; i < 4; i++)
			MW_EXPECT_EQ(run, ctx.user_ip6[i], before.user_ip6[i], "user_ip6 untouched");
	}
	MW_EXPECT_EQ(run, bpf_ntohs((__u16)ctx.user_port), c->to ? c->to_port : c->port,
		     "user_port");

	MW_EXPECT_EQ(run, bpf_ntohl(mw_test_bind_ip4), c->want_src ? bpf_ntohl(mw_test_ip4(c->want_src)) : 0,
		     "bpf_bind's source address (host order; 0: none)");
	MW_EXPECT_EQ(run, mw_test_bind_mapped, c->want_src && is6(c), "bpf_bind's address v4-mapped");

	orig = mw_test_sk_storage(&mw_orig_sk, &sk);
	MW_EXPECT_EQ(run, orig ? orig->flags : 0, c->want_mark, "mw_orig_sk flags");
	if (orig && c->want_mark && !c->mark) {
		MW_EXPECT_EQ(run, orig->ip4, ip4_of(c, c->dst), "mw_orig_sk address");
		MW_EXPECT_EQ(run, bpf_ntohs(orig->port), c->port, "mw_orig_sk port");
	}

	orig6 = mw_test_sk_storage(&mw_orig6_sk, &sk);
	MW_EXPECT_EQ(run, orig6 ? orig6->flags : 0, c->want_mark6, "mw_orig6_sk flags");
	if (orig6 && c->want_mark6 && !c->mark6) {
		__u32 want[4];

		mw_test_ip6(c->dst, want);
		for (int i = 0; i < 4; i++)
			MW_EXPECT_EQ(run, orig6->ip6[i], want[i], "mw_orig6_sk address word");
		MW_EXPECT_EQ(run, bpf_ntohs(orig6->port), c->port, "mw_orig6_sk port");
	}
	orig6 = mw_test_sk_storage(&mw_orig6_sk, &mptcp);
	MW_EXPECT_EQ(run, orig6 ? orig6->flags : 0, c->mptcp ? c->want_mark6 : 0,
		     "the MPTCP socket's mw_orig6_sk flags");

	orig = mw_test_sk_storage(&mw_orig_sk, &mptcp);
	MW_EXPECT_EQ(run, orig ? orig->flags : 0, c->mptcp ? c->want_mark : 0,
		     "the MPTCP socket's mw_orig_sk flags");
	if (orig) {
		MW_EXPECT_EQ(run, orig->ip4, ip4_of(c, c->dst), "the MPTCP socket's address");
		MW_EXPECT_EQ(run, bpf_ntohs(orig->port), c->port, "the MPTCP socket's port");
	}
	MW_EXPECT_EQ(run, mw_test_setsockopt_name, c->want_unbind ? 62 : -1,
		     "setsockopt SO_BINDTOIFINDEX (62)");
	if (c->want_unbind) {
		MW_EXPECT_EQ(run, mw_test_setsockopt_level, 1, "setsockopt level SOL_SOCKET");
		MW_EXPECT_EQ(run, mw_test_setsockopt_value, 0, "setsockopt to no device");
	}
	mw_test_expect_stats(run, c->stats);

	MW_EXPECT_EQ(run, mw_test_nevents, c->decision ? 1 : 0, "trace events");
	if (c->decision && mw_test_nevents == 1) {
		const struct mw_event *ev = &mw_test_events[0];

		MW_EXPECT_EQ(run, ev->hook, event_hook(c), "event hook");
		MW_EXPECT_EQ(run, ev->decision, c->decision, "event decision");
		MW_EXPECT_EQ(run, ev->netns_cookie, c->netns, "event netns cookie");
		/* The UID the hook decided by: a TCP socket's owner, else the
		   caller's (UDP; recvmsg decides nothing by UID). */
		MW_EXPECT_EQ(run, ev->uid,
			     c->owner_set && !c->udp && !c->icmp &&
				     c->decision != MW_DEC_DNS_RESTORED ? c->owner : c->uid,
			     "event uid");
		MW_EXPECT_EQ(run, ev->pid, 4242, "event pid");
		/* One layout for both families: native IPv6 has four words each. */
		MW_EXPECT_EQ(run, ev->ip6, native6(c), "event family (ip6)");
		if (c->decision == MW_DEC_DNS_RESTORED) {
			/* From the proxy (src), reported as from the resolver (dst). */
			expect_event_addr(run, c, ev->src_ip, c->dst, "event source");
			MW_EXPECT_EQ(run, ev->src_port, c->port, "event source port");
			expect_event_addr(run, c, ev->dst_ip, c->to, "event resolver");
			MW_EXPECT_EQ(run, ev->dst_port, c->to_port, "event resolver port");
		} else {
			MW_EXPECT_EQ(run, ev->dst_port, c->port, "event destination port");
			expect_event_addr(run, c, ev->dst_ip, c->dst, "event destination");
			expect_event_addr(run, c, ev->to_ip, c->to, "event new destination");
		}
		if (c->to && c->decision != MW_DEC_DNS_RESTORED)
			MW_EXPECT_EQ(run, ev->to_port, c->to_port, "event new port");
	}
}

MW_TEST_MAIN("bpf_sock.c", cases, run_case)
