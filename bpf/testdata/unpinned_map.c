// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Never loaded, never shipped: a loader unit test (loader/src/datapath/objects_tests.rs)
 * checks it as it checks the datapath's objects. Of its two maps one is
 * pinned by name, as every map of bpf/lib/meshwire_maps.h is, and one is
 * not, which the check must report (DeclarationMismatch::MapNotPinned).
 */
#include <linux/bpf.h>
#include "../lib/meshwire_config.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mw_t_pinned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mw_t_unpinned SEC(".maps");

char _license[] SEC("license") = "Dual BSD/GPL";
