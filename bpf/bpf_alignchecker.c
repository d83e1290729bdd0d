// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Never loaded: its BTF records every structure and enum shared with the
 * loader, so loader/src/datapath/layout.rs can check the Rust mirrors field by field
 * and value by value (BTF carries enums, not #defines).
 */
#include <linux/bpf.h>
#include "lib/meshwire_structs.h"
#include "lib/meshwire_consts.h"

#define MW_LAYOUT(type, name) type mw_layout_##name __attribute__((used))

MW_LAYOUT(struct mw_settings, settings);
MW_LAYOUT(struct mw_pod, pod);
MW_LAYOUT(struct mw_port_key, port_key);
MW_LAYOUT(struct mw_cidr4_key, cidr4_key);
MW_LAYOUT(struct mw_cidr6_key, cidr6_key);
MW_LAYOUT(struct mw_orig6, orig6);
MW_LAYOUT(struct mw_tuple6, tuple6);
MW_LAYOUT(struct mw_orig4, orig4);
MW_LAYOUT(struct mw_tuple4, tuple4);
MW_LAYOUT(struct mw_in4_key, in4_key);
MW_LAYOUT(struct mw_ip6_key, ip6_key);
MW_LAYOUT(struct mw_in6_key, in6_key);
MW_LAYOUT(struct mw_flow4_key, flow4_key);
MW_LAYOUT(struct mw_flow6_key, flow6_key);
MW_LAYOUT(struct mw_flow4, flow4);
MW_LAYOUT(struct mw_flow4_fin, flow4_fin);
MW_LAYOUT(struct mw_flow4_syn, flow4_syn);
MW_LAYOUT(struct mw_sock_key, sock_key);
MW_LAYOUT(struct mw_sock6_key, sock6_key);
MW_LAYOUT(struct mw_accel_state, accel_state);
MW_LAYOUT(struct mw_accel_hint_key, accel_hint_key);
MW_LAYOUT(struct mw_accel_hint, accel_hint);
MW_LAYOUT(enum mw_accel_short, accel_short);
MW_LAYOUT(struct mw_event, event);
MW_LAYOUT(enum mw_stat, stat);
MW_LAYOUT(enum mw_hook, hook);
MW_LAYOUT(enum mw_decision, decision);
MW_LAYOUT(enum mw_capacity, capacity);
MW_LAYOUT(enum mw_pod_flag, pod_flag);
MW_LAYOUT(enum mw_dir, dir);
MW_LAYOUT(enum mw_orig_flag, orig_flag);
MW_LAYOUT(enum mw_flow_flag, flow_flag);
MW_LAYOUT(enum mw_fin_acked, fin_acked);
MW_LAYOUT(enum mw_syn_flag, syn_flag);
MW_LAYOUT(enum mw_ipv6_policy, ipv6_policy);

char _license[] __attribute__((section("license"), used)) = "Dual BSD/GPL";
