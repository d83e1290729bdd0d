/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Which connections are steered into the sidecar. */
#ifndef MESHWIRE_POLICY_H
#define MESHWIRE_POLICY_H

#include <bpf/bpf_endian.h>
#include "meshwire_config.h"
#include "meshwire_maps.h"

static __always_inline const struct mw_pod *mw_pod_lookup(__u64 netns_cookie)
{
	return bpf_map_lookup_elem(&mw_pods, &netns_cookie);
}

/*
 * Who is the sidecar: the socket's owner (sk_uid, the creator's filesystem
 * UID, normally its effective UID), as iptables' owner match sees it, not
 * the calling task's real UID: a process that ran setresuid(1500, 0, 0)
 * is an app in both modes, one with effective UID 1500 the sidecar. Only
 * the field read is declared, relocated against the running kernel's BTF.
 */
#ifdef __bpf__
#define MW_CORE __attribute__((preserve_access_index))
#else
#define MW_CORE
#endif
struct sock___mw {
#ifndef __bpf__
	/*
	 * Host tests (bpf/tests) only: one object stands there for the kernel's
	 * socket to every reader, lib/meshwire_accel.h's tcp_sock___mwa too,
	 * which puts its fields first; sk_uid stays clear of them.
	 */
	__u64 mw_host_other_fields[8];
#endif
	struct {
		__u32 val;
	} sk_uid;
} MW_CORE;

/* The socket's owner UID on the host; (__u32)-1, no UID, if unknown. */
static __always_inline __u32 mw_sock_owner_uid(struct bpf_sock *sk)
{
	/* An MPTCP subflow: its MPTCP socket is the one the app created. */
	void *owner = bpf_skc_to_mptcp_sock(sk);

	if (!owner)
		owner = bpf_skc_to_tcp_sock(sk);
	if (!owner)
		return (__u32)-1;
	return ((struct sock___mw *)owner)->sk_uid.val;
}

/*
 * Is the socket the pod's sidecar's? Its UID on the host is sidecar.uid, or
 * for a pod in a user namespace of its own that UID mapped through it
 * (mw_pod_uid), as iptables' owner match maps it through the namespace.
 */
static __always_inline __u32 mw_sidecar_uid(__u64 netns_cookie)
{
	__u32 *mapped = bpf_map_lookup_elem(&mw_pod_uid, &netns_cookie);

	return mapped ? *mapped : mw_cfg.sidecar_uid;
}

/*
 * The UID the socket hooks decide by, and trace reports: the socket's owner
 * where BPF can read it (TCP, MPTCP); for a UDP socket (DNS capture) the
 * kernel offers no cast to an AF_INET UDP socket, so the calling task's real
 * UID stands for it (the same but for a task that sends on a socket another
 * UID made, or one that changed its UIDs after socket()).
 */
static __always_inline __u32 mw_decision_uid(struct bpf_sock *sk)
{
	__u32 owner = mw_sock_owner_uid(sk);

	return owner != (__u32)-1 ? owner : (__u32)bpf_get_current_uid_gid();
}

static __always_inline int mw_is_sidecar(struct bpf_sock *sk, __u64 netns_cookie)
{
	return mw_decision_uid(sk) == mw_sidecar_uid(netns_cookie);
}

static __always_inline int mw_port_listed(__u64 netns_cookie, __u16 port, __u8 dir)
{
	struct mw_port_key key = {
		.netns_cookie = netns_cookie,
		.port = port,
		.dir = dir,
	};

	return bpf_map_lookup_elem(&mw_excl_ports, &key) != NULL;
}

/* Node-wide list first, then the pod's own. */
static __always_inline int mw_port_excluded(__u64 netns_cookie, __u16 port, __u8 dir)
{
	return mw_port_listed(0, port, dir) ||
	       mw_port_listed(netns_cookie, port, dir);
}

static __always_inline int mw_cidr4_listed(void *map, __u64 netns_cookie, __u32 addr)
{
	struct mw_cidr4_key key = {
		.prefixlen = 96,
		.cookie_hi = (__u32)(netns_cookie >> 32),
		.cookie_lo = (__u32)netns_cookie,
		.addr = addr,
	};

	return bpf_map_lookup_elem(map, &key) != NULL;
}

static __always_inline int mw_cidr4_excluded(__u64 netns_cookie, __u32 addr)
{
	return mw_cidr4_listed(&mw_excl_cidr4, 0, addr) ||
	       mw_cidr4_listed(&mw_excl_cidr4, netns_cookie, addr);
}

/* An IPv6 address, four network-order words. */
static __always_inline int mw_cidr6_listed(void *map, __u64 netns_cookie, const __u32 *addr)
{
	struct mw_cidr6_key key = {
		.prefixlen = 64 + 128,
		.cookie_hi = (__u32)(netns_cookie >> 32),
		.cookie_lo = (__u32)netns_cookie,
		.addr = { addr[0], addr[1], addr[2], addr[3] },
	};

	return bpf_map_lookup_elem(map, &key) != NULL;
}

static __always_inline int mw_cidr6_excluded(__u64 netns_cookie, const __u32 *addr)
{
	return mw_cidr6_listed(&mw_excl_cidr6, 0, addr) ||
	       mw_cidr6_listed(&mw_excl_cidr6, netns_cookie, addr);
}

/*
 * Istio's includeOutboundIPRanges and includeOutboundPorts: a pod with
 * MW_POD_F_OUT_SELECT has only connections to an included port (whatever
 * the address) or range steered. Exclusions are checked first, and win.
 */
static __always_inline int mw_out_included(const struct mw_pod *pod, __u64 netns_cookie,
					   __u16 port, __u32 addr)
{
	if (!(pod->flags & MW_POD_F_OUT_SELECT))
		return 1;
	return mw_port_listed(netns_cookie, port, MW_DIR_OUT_INCL) ||
	       mw_cidr4_listed(&mw_incl_cidr4, netns_cookie, addr);
}

/* The include lists for native IPv6: the same rule, with mw_incl_cidr6. */
static __always_inline int mw_out_included6(const struct mw_pod *pod, __u64 netns_cookie,
					    __u16 port, const __u32 *addr)
{
	if (!(pod->flags & MW_POD_F_OUT_SELECT))
		return 1;
	return mw_port_listed(netns_cookie, port, MW_DIR_OUT_INCL) ||
	       mw_cidr6_listed(&mw_incl_cidr6, netns_cookie, addr);
}

/* ::1, four network-order words. */
static __always_inline int mw_is_loopback6(const __u32 *addr)
{
	return (addr[0] | addr[1] | addr[2]) == 0 && addr[3] == bpf_htonl(1);
}

static __always_inline int mw_is_loopback4(__u32 addr)
{
	return (bpf_ntohl(addr) & 0xff000000U) == MW_LOOPBACK_NET4;
}

/*
 * An IPv6 address (four words, network order) that is an IPv4 one: a
 * dual-stack socket (AF_INET6, the default of Java, Node.js, Python's
 * create_connection on some systems) dialling an IPv4 destination. Its
 * packets are IPv4: meshwire steers it like connect4.
 */
static __always_inline int mw_is_v4mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(MW_V4MAPPED_PREFIX);
}

/*
 * An IPv4 connection: an AF_INET socket, or an AF_INET6 one on v4-mapped
 * addresses (connect6 steers those; local_ip4 and remote_ip4 hold its
 * addresses). ctx: a struct bpf_sock_ops or struct sk_msg_md, whose address
 * fields are the same. One 4-byte load per word: the verifier refuses
 * merged 8-byte loads of the context.
 */
#define mw_conn_is_ip4(ctx)							\
	((ctx)->family == MW_AF_INET ||						\
	 ((ctx)->family == MW_AF_INET6 &&					\
	  mw_is_v4mapped(((const volatile __u32 *)(ctx)->remote_ip6)[0],	\
			 ((const volatile __u32 *)(ctx)->remote_ip6)[1],	\
			 ((const volatile __u32 *)(ctx)->remote_ip6)[2])))

static __always_inline int mw_in_port_listed(__u32 pod_ip4, __u16 port)
{
	struct mw_in4_key key = { .pod_ip4 = pod_ip4, .port = port };

	return bpf_map_lookup_elem(&mw_excl_in4, &key) != NULL;
}

/*
 * The meshed pod an address belongs to (its netns cookie), or NULL. addr:
 * one network-order word (is6 0) or four (is6 1), on the stack. The callers
 * pass is6 as a constant, so each family keeps its own map lookup.
 */
static __always_inline const __u64 *mw_pod_ip_cookie(const __u32 *addr, const int is6)
{
	if (is6)
		return bpf_map_lookup_elem(&mw_pod_ips6, addr);
	return bpf_map_lookup_elem(&mw_pod_ips, addr);
}

/* A port in the pod address's own list of excluded inbound ports. */
static __always_inline int mw_in_port_listed_at(const __u32 *addr, const int is6, __u16 port)
{
	struct mw_in6_key key6 = { .port = port };

	if (!is6)
		return mw_in_port_listed(addr[0], port);
	__builtin_memcpy(key6.pod_ip6, addr, sizeof(key6.pod_ip6));
	return bpf_map_lookup_elem(&mw_excl_in6, &key6) != NULL;
}

/*
 * Inbound connections to these ports of a meshed pod (address addr, as for
 * mw_pod_ip_cookie; netns cookie pod_cookie) reach the app directly: the
 * sidecar's own ports, the node-wide list (both families), the pod
 * address's own list, and with MW_POD_F_IN_SELECT (Istio's
 * includeInboundPorts) every port it does not include.
 */
static __always_inline int mw_in_port_excluded_at(const __u32 *addr, const int is6,
						  __u64 pod_cookie, __u16 port)
{
	const struct mw_pod *pod;

	if (port == mw_cfg.outbound_port || port == mw_cfg.inbound_port ||
	    mw_in_port_listed(0, port) || mw_in_port_listed_at(addr, is6, port))
		return 1;
	pod = mw_pod_lookup(pod_cookie);
	return pod && (pod->flags & MW_POD_F_IN_SELECT) &&
	       !mw_port_listed(pod_cookie, port, MW_DIR_IN_INCL);
}

static __always_inline int mw_in_port_excluded(__u32 pod_ip4, __u64 pod_cookie, __u16 port)
{
	return mw_in_port_excluded_at(&pod_ip4, 0, pod_cookie, port);
}

/* How a sidecar's connection to an address on this node goes (same-node inbound). */
enum mw_inbound {
	MW_INBOUND_NONE,	/* not a meshed pod's address: untouched */
	MW_INBOUND_OWN,		/* its own pod (loopback or address): to its app */
	MW_INBOUND_EXCLUDED,	/* another meshed pod, an excluded port: direct */
	MW_INBOUND_STEER,	/* another meshed pod: to that pod's inbound port */
};

/*
 * A sidecar (of netns_cookie) dials addr:port (port in host order; addr as
 * for mw_pod_ip_cookie): the same decision for both families.
 */
static __always_inline enum mw_inbound mw_inbound_of(__u64 netns_cookie, const __u32 *addr,
						     const int is6, __u16 port)
{
	const __u64 *peer_cookie;

	if (is6 ? mw_is_loopback6(addr) : mw_is_loopback4(addr[0]))
		return MW_INBOUND_OWN;
	peer_cookie = mw_pod_ip_cookie(addr, is6);
	if (!peer_cookie)
		return MW_INBOUND_NONE;
	if (*peer_cookie == netns_cookie)
		return MW_INBOUND_OWN;
	if (mw_in_port_excluded_at(addr, is6, *peer_cookie, port))
		return MW_INBOUND_EXCLUDED;
	return MW_INBOUND_STEER;
}

/*
 * The sidecar's capture ports: only connections meshwire steered there may
 * reach them. One straight to them has no original destination, and a
 * proxy that falls back to its own address then dials itself in a loop.
 */
static __always_inline int mw_is_capture_port(__u16 port)
{
	return port == mw_cfg.outbound_port || port == mw_cfg.inbound_port;
}

/*
 * The ports the sidecar accepts steered TCP connections on: their accepted
 * sockets get the original destination (sockops) for SO_ORIGINAL_DST.
 */
static __always_inline int mw_is_steered_port(__u16 port)
{
	return mw_is_capture_port(port) || port == mw_cfg.dns_port;
}

/*
 * DNS capture ([dns]): a query of a pod with MW_POD_F_DNS to port 53
 * (addr and port in network order), to any resolver or, with [dns] servers,
 * only to those listed. addr: one word (is6 0) or four (is6 1), on the
 * stack, as for mw_pod_ip_cookie: each family looks in its own list.
 */
static __always_inline int mw_dns_captured_at(const struct mw_pod *pod, const __u32 *addr,
					      const int is6, __u16 port)
{
	if (!(pod->flags & MW_POD_F_DNS) || port != bpf_htons(MW_DNS_PORT))
		return 0;
	if (!mw_cfg.dns_servers)
		return 1;
	if (is6)
		return bpf_map_lookup_elem(&mw_dns_servers6, addr) != NULL;
	return bpf_map_lookup_elem(&mw_dns_servers4, addr) != NULL;
}

static __always_inline int mw_dns_captured(const struct mw_pod *pod, __u32 ip4, __u16 port)
{
	return mw_dns_captured_at(pod, &ip4, 0, port);
}

#endif /* MESHWIRE_POLICY_H */
