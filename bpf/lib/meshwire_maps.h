/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the datapath, declared here only (the loader's list of them,
 * loader/src, is checked against the built objects). All are pinned by name
 * under the loader's pin directory, so separate objects (and a restarted
 * loader) share one instance of each; libbpf refuses to reuse a pinned map
 * whose type, key, value or size differ, which is the upgrade compatibility
 * check. Every object declares every map, also those only one program
 * uses: they are created once, by whichever object loads first.
 */
#ifndef MESHWIRE_MAPS_H
#define MESHWIRE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "meshwire_structs.h"
#include "meshwire_consts.h"

/* Meshed pods, keyed by network-namespace cookie; filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_PODS);
	__type(key, __u64);
	__type(value, struct mw_pod);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_pods SEC(".maps");

/* Destination ports never redirected, node-wide (cookie 0) or per pod. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_EXCL_PORTS);
	__type(key, struct mw_port_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_excl_ports SEC(".maps");

/* Destination CIDRs never redirected, node-wide (cookie 0) or per pod. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MW_MAX_EXCL_CIDRS);
	__type(key, struct mw_cidr4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_excl_cidr4 SEC(".maps");

/*
 * IPv6 destination CIDRs never redirected, node-wide (cookie 0) or per pod;
 * mw_excl_cidr4's twin, with its capacity.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MW_MAX_EXCL_CIDRS);
	__type(key, struct mw_cidr6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_excl_cidr6 SEC(".maps");

/*
 * Destination CIDRs steered, per pod, for pods whose mw_pod has
 * MW_POD_F_OUT_SELECT (Istio's includeOutboundIPRanges); same keys as
 * mw_excl_cidr4. Included ports are in mw_excl_ports (MW_DIR_*_INCL).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MW_MAX_INCL_CIDRS);
	__type(key, struct mw_cidr4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_incl_cidr4 SEC(".maps");

/*
 * mw_incl_cidr4's twin for native IPv6 (interception.ipv6 = "intercept"),
 * with its capacity: a pod's included IPv6 ranges, keyed as mw_excl_cidr6.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MW_MAX_INCL_CIDRS);
	__type(key, struct mw_cidr6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_incl_cidr6 SEC(".maps");

/*
 * Original destination attached to a socket: the app's redirected socket
 * (for sockops at established, and getpeername), the sidecar's accepted
 * socket (for getsockopt), and an app's UDP socket whose DNS queries went to
 * the DNS proxy (the resolver, for recvmsg and getpeername). The kernel frees
 * it with the socket: no leak.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mw_orig4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_orig_sk SEC(".maps");

/*
 * Original destination between the app's established() and the sidecar's
 * accept. Removed when the sidecar side is established or the app's socket
 * closes; LRU bounds it should both be missed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_TUPLES);
	__type(key, struct mw_tuple4);
	__type(value, struct mw_orig4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_orig_tuple4 SEC(".maps");

/*
 * mw_orig_sk and mw_orig_tuple4 for native IPv6 connections (connect6 to
 * [::1]:outbound_port), with the same lifetimes and capacity: the LRU map
 * evicts its oldest entry when full, as mw_orig_tuple4 does.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mw_orig6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_orig6_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_TUPLES);
	__type(key, struct mw_tuple6);
	__type(value, struct mw_orig6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_orig_tuple6 SEC(".maps");

/* Meshed pods by IPv4 address (network order) -> netns cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_POD_IPS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_pod_ips SEC(".maps");

/* Meshed pods by IPv6 address -> netns cookie; mw_pod_ips' twin. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_POD_IPS);
	__type(key, struct mw_ip6_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_pod_ips6 SEC(".maps");

/*
 * The sidecar's UID on the host for a meshed pod whose network namespace
 * belongs to a user namespace of its own (Kubernetes `hostUsers: false`):
 * sidecar.uid mapped through that namespace's uid_map, keyed by netns
 * cookie. Pods without an entry use sidecar.uid itself (mw_cfg).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_PODS);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_pod_uid SEC(".maps");

/* Inbound ports reached directly, node-wide (pod_ip4 0) or per pod IP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_EXCL_IN);
	__type(key, struct mw_in4_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_excl_in4 SEC(".maps");

/* Inbound ports reached directly per pod IPv6 address; mw_excl_in4's twin. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_EXCL_IN);
	__type(key, struct mw_in6_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_excl_in6 SEC(".maps");

/*
 * Inbound flows redirected by tc ingress: read by tc egress to restore the
 * source port and by sockops to tell the sidecar the port the peer dialled.
 * Removed on RST and after the closing handshake; LRU bounds the rest.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow4_key);
	__type(value, struct mw_flow4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_flow4 SEC(".maps");

/*
 * Closing state of mw_flow4's flows (tc, bpf_tc.c); only flows that are
 * closing have an entry. Pinned so that a restarted loader's programs
 * continue where the old ones left off.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow4_key);
	__type(value, struct mw_flow4_fin);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_flow4_fin SEC(".maps");

/*
 * Inbound handshakes in progress (tc, bpf_tc.c): only the peer's ACK of the
 * sidecar's SYN-ACK moves a flow into mw_flow4, so a SYN flood churns this
 * map alone.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow4_key);
	__type(value, struct mw_flow4_syn);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_flow4_syn SEC(".maps");

/*
 * mw_flow4, mw_flow4_fin and mw_flow4_syn for inbound IPv6 connections
 * (interception.ipv6 = "intercept"), with their capacities and values.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow6_key);
	__type(value, struct mw_flow4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_flow6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow6_key);
	__type(value, struct mw_flow4_fin);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_flow6_fin SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_FLOWS);
	__type(key, struct mw_flow6_key);
	__type(value, struct mw_flow4_syn);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_flow6_syn SEC(".maps");

/*
 * Established sockets whose peer is on this node, for sk_msg to hand each
 * message straight to the peer. The kernel removes a socket when it closes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MW_MAX_SOCKS);
	__type(key, struct mw_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_sock_hash SEC(".maps");

/*
 * Acceleration (lib/meshwire_accel.h): one entry per socket in mw_sock_hash,
 * under the same key (its flags and its psock's address, which its peer's
 * sk_msg reads its backlog through: one lookup serves both); created right
 * after the socket entered the map, its psock address in it, and removed at its FIN (or its close,
 * without one). Not preallocated:
 * sk_msg may still hold an entry when it is removed, and a freed entry is only reused after an RCU
 * grace period.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_SOCKS);
	__type(key, struct mw_sock_key);
	__type(value, struct mw_accel_state);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_accel_state SEC(".maps");

/*
 * mw_sock_hash and mw_accel_state for native IPv6 sockets (interception.ipv6
 * = "intercept"), keyed by their IPv6 4-tuple, with the same capacity and the
 * same behaviour when full (the socket is not accelerated, accel_error).
 * v4-mapped sockets are IPv4 connections: they go into mw_sock_hash, where
 * their IPv4 peers find them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MW_MAX_SOCKS);
	__type(key, struct mw_sock6_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_sock_hash6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_SOCKS);
	__type(key, struct mw_sock6_key);
	__type(value, struct mw_accel_state);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_accel_state6 SEC(".maps");

/*
 * Acceleration's hints (lib/meshwire_accel.h, "Short connections"): per
 * deciding pod and destination, whether its recent accelerated connections
 * were short. Written at a hop's connecting end's FIN, read at its
 * establishment; LRU: a destination not seen for long is forgotten, and its
 * next connections are accelerated, as any new destination's are.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MW_MAX_ACCEL_HINTS);
	__type(key, struct mw_accel_hint_key);
	__type(value, struct mw_accel_hint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_accel_hints SEC(".maps");

/*
 * [dns] servers: the resolver addresses (network order) whose queries are
 * captured, when mw_cfg.dns_servers is set; filled by the loader at start.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_DNS_SERVERS);
	__type(key, __u32);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_dns_servers4 SEC(".maps");

/* [dns] servers' IPv6 resolvers; mw_dns_servers4's twin, with its capacity. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MW_MAX_DNS_SERVERS);
	__type(key, struct mw_ip6_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_dns_servers6 SEC(".maps");

/* Counters, indexed by enum mw_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_stats SEC(".maps");

/*
 * Decision events for `meshwire-loader trace` (bpf.trace = true; see
 * lib/meshwire_trace.h). Written with bpf_ringbuf_output, never waiting: when
 * no reader keeps up the event is dropped and MW_STAT_TRACE_DROPPED counts it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MW_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_events SEC(".maps");

static __always_inline void mw_count(enum mw_stat stat)
{
	__u32 key = stat;
	__u64 *n = bpf_map_lookup_elem(&mw_stats, &key);

	if (n)
		*n += 1;
}

#endif /* MESHWIRE_MAPS_H */
