/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef MESHWIRE_CONFIG_H
#define MESHWIRE_CONFIG_H

#include <bpf/bpf_helpers.h>
#include "meshwire_structs.h"
#include "meshwire_consts.h"

/*
 * Set by the loader before load (libbpf rewrites .rodata), so the verifier
 * sees constants: with debug off, the traces are dead code and removed.
 * The host tests (bpf/tests) define MW_CFG_CONST empty to vary it per case.
 */
#ifndef MW_CFG_CONST
#define MW_CFG_CONST const
#endif
MW_CFG_CONST volatile struct mw_settings mw_cfg = {
	.sidecar_uid = 1500,
	.outbound_port = 15001,
	.inbound_port = 15003,
	.debug = 0,
	.accel = 0,
	.trace = 0,
	.ipv6 = MW_IPV6_INTERCEPT,
	.dns_port = 15053,
	.dns_servers = 0,
	.out_sources = 16,
	.accel_short = MW_ACCEL_SHORT_LEARN,
};

/* A decision trace, readable in /sys/kernel/tracing/trace_pipe. */
#define mw_trace(fmt, ...)						\
	do {								\
		if (mw_cfg.debug)					\
			bpf_printk("meshwire " fmt, ##__VA_ARGS__);	\
	} while (0)

#endif /* MESHWIRE_CONFIG_H */
