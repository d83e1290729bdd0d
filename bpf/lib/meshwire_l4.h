/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP parsing (IPv4 and IPv6) and port rewriting for the tc programs.
 *
 * The headers are read in place (direct packet access) when the skb's
 * linear data holds them, which is nearly always: each packet then costs no
 * helper call before the flow lookup. Otherwise (headers in paged data, IPv6
 * extension headers) they are copied out with bpf_skb_load_bytes() at
 * computed offsets, which checks the bounds at run time; a packet too short
 * for what we read is simply not ours. Both ways give the same result.
 * Writes always go through bpf_skb_store_bytes() and bpf_l4_csum_replace():
 * a direct write would make the kernel unclone every packet the program
 * sees (TCP transmits clones), rewritten or not.
 */
#ifndef MESHWIRE_L4_H
#define MESHWIRE_L4_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* iphdr.frag_off (host order after bpf_ntohs) */
#define MW_IP_MF		0x2000
#define MW_IP_OFFSET		0x1fff

/* The TCP flags byte (offset 13 of the TCP header). */
#define MW_TCP_FIN		0x01
#define MW_TCP_SYN		0x02
#define MW_TCP_RST		0x04
#define MW_TCP_ACK		0x10

#define MW_TCP_FLAGS_OFF	13
#define MW_TCP_SPORT_OFF	__builtin_offsetof(struct tcphdr, source)
#define MW_TCP_DPORT_OFF	__builtin_offsetof(struct tcphdr, dest)
#define MW_TCP_CSUM_OFF		__builtin_offsetof(struct tcphdr, check)

/*
 * The parts of a TCP packet the tc programs look at, IPv4 (mw_parse_tcp4) or
 * IPv6 (mw_parse_tcp6: saddr and daddr 0, the addresses in saddr6/daddr6).
 */
struct mw_tcp4 {
	__u32 saddr;		/* network order */
	__u32 daddr;		/* network order */
	__u32 saddr6[4];	/* network order */
	__u32 daddr6[4];	/* network order */
	__u16 sport;		/* network order */
	__u16 dport;		/* network order */
	__u32 seq;		/* host order */
	__u32 ack_seq;		/* host order */
	__u32 l4_off;		/* offset of the TCP header from the packet start */
	__u32 seg_len;		/* TCP payload bytes */
	__u8  flags;		/* MW_TCP_* */
};

enum mw_parse {
	MW_PARSE_TCP = 0,	/* a TCP segment with its header: *t is filled */
	MW_PARSE_OTHER,		/* not the family asked, not TCP, or a non-first fragment */
	MW_PARSE_BAD,		/* IP header malformed (IHL < 5, version) or truncated */
};

/*
 * The TCP header's fields into *t, for either family; l4_len: the bytes from
 * the TCP header to the end of the IP datagram.
 */
static __always_inline void mw_tcp_take(struct mw_tcp4 *t, const struct tcphdr *tcph, __u32 l4_len)
{
	__u32 doff_len = (__u32)tcph->doff * 4;

	t->sport = tcph->source;
	t->dport = tcph->dest;
	t->seq = bpf_ntohl(tcph->seq);
	t->ack_seq = bpf_ntohl(tcph->ack_seq);
	t->flags = ((const __u8 *)tcph)[MW_TCP_FLAGS_OFF];
	t->seg_len = l4_len > doff_len ? l4_len - doff_len : 0;
}

/*
 * Parse an Ethernet frame (tc on an Ethernet device: the packet starts at the
 * MAC header). Only the first fragment of a fragmented datagram carries the
 * TCP header; later ones are left alone.
 */
static __always_inline enum mw_parse mw_parse_tcp4_copy(struct __sk_buff *skb, struct mw_tcp4 *t)
{
	struct iphdr iph;
	struct tcphdr tcph;
	__u32 ihl_len, tot_len;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &iph, sizeof(iph)))
		return MW_PARSE_BAD;
	if (iph.version != 4 || iph.ihl < 5)
		return MW_PARSE_BAD;
	if (iph.protocol != IPPROTO_TCP)
		return MW_PARSE_OTHER;
	if (bpf_ntohs(iph.frag_off) & MW_IP_OFFSET)
		return MW_PARSE_OTHER;

	ihl_len = (__u32)iph.ihl * 4;
	t->l4_off = ETH_HLEN + ihl_len;
	if (bpf_skb_load_bytes(skb, t->l4_off, &tcph, sizeof(tcph)))
		return MW_PARSE_BAD;

	t->saddr = iph.saddr;
	t->daddr = iph.daddr;
	tot_len = bpf_ntohs(iph.tot_len);
	if (!tot_len)	/* BIG TCP: a GSO packet over 64 KiB has no IPv4 length */
		tot_len = skb->len - ETH_HLEN;
	mw_tcp_take(t, &tcph, tot_len > ihl_len ? tot_len - ihl_len : 0);
	return MW_PARSE_TCP;
}

/* mw_parse_tcp4_copy's checks and results, the headers read in place. */
static __always_inline enum mw_parse mw_parse_tcp4(struct __sk_buff *skb, struct mw_tcp4 *t)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + ETH_HLEN;
	struct tcphdr *tcph;
	__u32 ihl_len, tot_len;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return MW_PARSE_OTHER;
	if ((void *)(iph + 1) > end)
		return mw_parse_tcp4_copy(skb, t);
	if (iph->version != 4 || iph->ihl < 5)
		return MW_PARSE_BAD;
	if (iph->protocol != IPPROTO_TCP)
		return MW_PARSE_OTHER;
	if (bpf_ntohs(iph->frag_off) & MW_IP_OFFSET)
		return MW_PARSE_OTHER;

	ihl_len = (__u32)iph->ihl * 4;
	tcph = (void *)iph + ihl_len;
	if ((void *)(tcph + 1) > end)
		return mw_parse_tcp4_copy(skb, t);
	t->l4_off = ETH_HLEN + ihl_len;
	t->saddr = iph->saddr;
	t->daddr = iph->daddr;
	tot_len = bpf_ntohs(iph->tot_len);
	if (!tot_len)	/* BIG TCP: a GSO packet over 64 KiB has no IPv4 length */
		tot_len = skb->len - ETH_HLEN;
	mw_tcp_take(t, tcph, tot_len > ihl_len ? tot_len - ihl_len : 0);
	return MW_PARSE_TCP;
}

/*
 * Replace a TCP port (network order) at port_off in the TCP header. The
 * pseudo header holds no port, so only the 2-byte difference goes into the
 * checksum (for CHECKSUM_PARTIAL packets the kernel leaves the field alone,
 * as it must). The packet's overall one's-complement sum does not change, so
 * a CHECKSUM_COMPLETE skb->csum stays valid too.
 */
static __always_inline int mw_tcp4_set_port(struct __sk_buff *skb, const struct mw_tcp4 *t,
					    __u32 port_off, __u16 from, __u16 to)
{
	if (bpf_skb_store_bytes(skb, t->l4_off + port_off, &to, sizeof(to), 0))
		return -1;
	if (bpf_l4_csum_replace(skb, t->l4_off + MW_TCP_CSUM_OFF, from, to, sizeof(to)))
		return -1;
	return 0;
}

/* IPv6 next-header values the walk below knows. */
#define MW_NEXTHDR_HOP		0
#define MW_NEXTHDR_TCP		6
#define MW_NEXTHDR_ROUTING	43
#define MW_NEXTHDR_FRAGMENT	44
#define MW_NEXTHDR_AUTH		51
#define MW_NEXTHDR_DEST		60
#define MW_IPV6_HLEN		40
#define MW_IPV6_EXT_MAX		8	/* extension headers walked before giving up */

/*
 * mw_parse_tcp4 for an IPv6 frame. Extension headers are walked (hop-by-hop,
 * routing, destination options, authentication, the first fragment's
 * header; at most MW_IPV6_EXT_MAX); a later fragment, a chain too long or
 * another protocol is MW_PARSE_OTHER, a truncated one MW_PARSE_BAD.
 */
static __always_inline enum mw_parse mw_parse_tcp6_copy(struct __sk_buff *skb, struct mw_tcp4 *t)
{
	__u32 off = ETH_HLEN + MW_IPV6_HLEN, ext_len, payload_len;
	__u8 ip6[8], hdr[4], next;
	struct tcphdr tcph;
	int i;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, ip6, sizeof(ip6)) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 8, t->saddr6, 16) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 24, t->daddr6, 16))
		return MW_PARSE_BAD;
	if ((ip6[0] >> 4) != 6)
		return MW_PARSE_BAD;
	next = ip6[6];
	for (i = 0; i < MW_IPV6_EXT_MAX && next != MW_NEXTHDR_TCP; i++) {
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)))
			return MW_PARSE_BAD;
		switch (next) {
		case MW_NEXTHDR_HOP:
		case MW_NEXTHDR_ROUTING:
		case MW_NEXTHDR_DEST:
			off += ((__u32)hdr[1] + 1) * 8;
			break;
		case MW_NEXTHDR_AUTH:
			off += ((__u32)hdr[1] + 2) * 4;
			break;
		case MW_NEXTHDR_FRAGMENT:
			/* Fragment offset (upper 13 bits of bytes 2-3): 0 only in the first. */
			if (((__u16)hdr[2] << 8 | hdr[3]) & 0xfff8)
				return MW_PARSE_OTHER;
			off += 8;
			break;
		default:
			return MW_PARSE_OTHER;
		}
		next = hdr[0];
	}
	if (next != MW_NEXTHDR_TCP)
		return MW_PARSE_OTHER;
	if (bpf_skb_load_bytes(skb, off, &tcph, sizeof(tcph)))
		return MW_PARSE_BAD;
	t->l4_off = off;
	ext_len = off - ETH_HLEN - MW_IPV6_HLEN;
	payload_len = (__u32)ip6[4] << 8 | ip6[5];
	if (!payload_len)	/* BIG TCP or a jumbogram: no IPv6 length */
		payload_len = skb->len - ETH_HLEN - MW_IPV6_HLEN;
	mw_tcp_take(t, &tcph, payload_len > ext_len ? payload_len - ext_len : 0);
	return MW_PARSE_TCP;
}

/*
 * mw_parse_tcp6_copy's results; the common packet (TCP right after the
 * fixed header) read in place, one with extension headers walked there.
 */
static __always_inline enum mw_parse mw_parse_tcp6(struct __sk_buff *skb, struct mw_tcp4 *t)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *ip6 = data + ETH_HLEN;
	struct tcphdr *tcph = data + ETH_HLEN + MW_IPV6_HLEN;
	__u32 payload_len;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return MW_PARSE_OTHER;
	if ((void *)(tcph + 1) > end || (ip6[0] >> 4) != 6 || ip6[6] != MW_NEXTHDR_TCP)
		return mw_parse_tcp6_copy(skb, t);
	__builtin_memcpy(t->saddr6, ip6 + 8, 16);
	__builtin_memcpy(t->daddr6, ip6 + 24, 16);
	t->l4_off = ETH_HLEN + MW_IPV6_HLEN;
	payload_len = (__u32)ip6[4] << 8 | ip6[5];
	if (!payload_len)	/* BIG TCP or a jumbogram: no IPv6 length */
		payload_len = skb->len - ETH_HLEN - MW_IPV6_HLEN;
	mw_tcp_take(t, tcph, payload_len);
	return MW_PARSE_TCP;
}

/* Sequence-number order: a at or after b (RFC 793 modular comparison). */
static __always_inline int mw_seq_after_eq(__u32 a, __u32 b)
{
	return (__s32)(a - b) >= 0;
}

#endif /* MESHWIRE_L4_H */
