/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Acceleration (sockops fills mw_sock_hash, sk_msg redirects each message to
 * the peer's receive queue): the state both programs share, and why it exists.
 *
 * A socket in a sockmap reads through the kernel's tcp_bpf_recvmsg(), and on
 * Linux 6.18 (and bpf-next as of 2026) that function has two defects that
 * the datapath must work around (test/accel_e2e.sh shows both):
 *
 *  1. A blocking recv() returns EAGAIN on any wake-up that brings no data,
 *     instead of waiting out its timeout: tcp_msg_wait_data() returns 0 and
 *     tcp_bpf_recvmsg() turns that into -EAGAIN. The wake-up every half-close
 *     produces is the peer's ACK of our FIN (FIN_WAIT1 -> FIN_WAIT2 calls
 *     sk_state_change). So "send, shutdown(SHUT_WR), read the reply" fails
 *     with EAGAIN whenever the reply comes after that ACK. A signal does the
 *     same (even with SA_RESTART), and so does a reset (EAGAIN, not
 *     ECONNRESET).
 *  2. Taking a socket out of the map drops what was redirected to it and not
 *     read yet: sk_psock_drop() -> sk_psock_destroy() purges ingress_msg. So
 *     a socket may only leave the map early if nothing was ever redirected to
 *     it, and nothing can be any more.
 *
 * What the datapath does:
 *
 *  - When a socket sends its FIN (state FIN_WAIT1, from shutdown() or close(),
 *    before the application can read again), it takes itself out of
 *    mw_sock_hash if nothing was ever redirected to it: its reads are then the
 *    plain tcp_recvmsg() with correct blocking semantics. It also marks itself
 *    closing, and from then on its peer sends to it through TCP.
 *  - Whether "something was redirected to X" and "X is closing" are decided
 *    under one spin lock in X's mw_accel_state entry: the peer's sk_msg sets
 *    MW_ACCEL_RX before it redirects, unless MW_ACCEL_CLOSING is set; X's
 *    sockops sets MW_ACCEL_CLOSING and leaves the map only if MW_ACCEL_RX was
 *    not set. So a redirect in flight always finds X still in the map
 *    (nothing is lost), and after X leaves nothing is redirected to it.
 *  - A socket that sent even one message through TCP (its peer was not in the
 *    map yet, was never accelerated, or was closing) keeps sending through
 *    TCP (MW_ACCEL_TCP_TX): the peer reads its ingress queue before its TCP
 *    queue, so mixing the two ways would reorder the stream.
 *
 * What is left (docs/acceleration.md says what it means for apps; no BPF program can reach these):
 *  - a read already waiting inside tcp_bpf_recvmsg() when another thread
 *    half-closes the same socket (a thread-per-direction relay) gets the
 *    EAGAIN of (1) if the peer's ACK of that FIN comes before data: leaving
 *    the map does not help a call that is already running;
 *  - a socket that received redirected data and then half-closes stays in
 *    the map, so its blocking reads can get that EAGAIN until its FIN is
 *    ACKed (the peer's later data goes through TCP and carries the ACK, so
 *    only a pure ACK while the reader waits does it);
 *  - a blocked read interrupted by a signal returns EAGAIN;
 *  - splice(2) from an accelerated socket does not see redirected data
 *    (tcp_splice_read() reads only the TCP receive queue).
 */
#ifndef MESHWIRE_ACCEL_H
#define MESHWIRE_ACCEL_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "meshwire_maps.h"

/* struct mw_accel_state and MW_ACCEL_* are in meshwire_structs.h and
 * meshwire_consts.h, the mw_accel_state map in meshwire_maps.h. */

#endif /* MESHWIRE_ACCEL_H */
