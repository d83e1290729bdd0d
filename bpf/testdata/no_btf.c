// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Never loaded, never shipped: compiled without debug information (-g0
 * after the rule's -g, bpf/BUILD.bazel), so the object has no BTF. A loader
 * unit test (loader/src/datapath/objects_tests.rs) gives it to the check
 * every start makes first, which must refuse it naming the object
 * (BuildMismatch::NoBtf). No map: libbpf reads map definitions from BTF.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int mw_t_no_btf(struct __sk_buff *skb)
{
	return 0;
}

char _license[] SEC("license") = "Dual BSD/GPL";
