/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef MESHWIRE_CONSTS_H
#define MESHWIRE_CONSTS_H

/* Map capacities. The loader reports them; see README "Limits". */
#define MW_MAX_PODS		4096
#define MW_MAX_EXCL_PORTS	4096
#define MW_MAX_EXCL_CIDRS	4096
#define MW_MAX_TUPLES		65536
#define MW_MAX_POD_IPS		4096
#define MW_MAX_EXCL_IN		4096
#define MW_MAX_FLOWS		65536
#define MW_MAX_SOCKS		65536
/* mw_events (trace ring buffer), bytes: a power of two, page multiple. */
#define MW_EVENTS_BYTES		(256 * 1024)

/* mw_pod.flags */
#define MW_POD_F_MESHED		(1U << 0)
#define MW_POD_F_ACCEL		(1U << 1)	/* its mesh hops are accelerated, when the node runs it */

/* mw_port_key.dir */
#define MW_DIR_OUT		1
#define MW_DIR_IN		2

/* mw_orig4.flags */
#define MW_ORIG_F_CONNECT	(1U << 0)	/* on the app's socket, until established */
#define MW_ORIG_F_ACCEPTED	(1U << 1)	/* on the sidecar's accepted socket */
#define MW_ORIG_F_DELIVER	(1U << 2)	/* on the sidecar's socket to its own app (acceleration) */

/* mw_flow4.flags */
#define MW_FLOW_F_FIN_IN	(1U << 0)	/* FIN seen from the remote peer */
#define MW_FLOW_F_FIN_OUT	(1U << 1)	/* FIN seen from the pod */

/* cgroup sock_addr / sockopt verdicts */
#define MW_ALLOW		1
#define MW_DENY			0

/* Not in the UAPI headers we build against. */
#define MW_SOL_IP		0	/* SOL_IP == IPPROTO_IP */
#define MW_SO_ORIGINAL_DST	80	/* linux/netfilter_ipv4.h */
#define MW_PAGE_SIZE		4096
#define MW_AF_INET		2
#define MW_AF_INET6		10
#define MW_SOCK_STREAM		1
#define MW_LOOPBACK_NET4	0x7f000000U	/* 127.0.0.0/8, host order */
#define MW_LOOPBACK_ADDR4	0x7f000001U	/* 127.0.0.1, host order */
#define MW_V4MAPPED_PREFIX	0x0000ffffU	/* ::ffff:0:0/96, third word, host order */

#endif /* MESHWIRE_CONSTS_H */
