// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Network: tp_btf/sock_send_length + sock_recv_length (bytes and UDP datagrams of every
 * successful sock_sendmsg/sock_recvmsg on AF_INET/AF_INET6 sockets, attributed to the
 * calling task), tp_btf/inet_sock_set_state (TCP transitions, active/passive/failed
 * connects, connect latency SYN_SENT -> ESTABLISHED) and tp_btf/tcp_retransmit_skb.
 *
 * State changes and retransmits mostly run in softirq context, where the current task is
 * unrelated to the socket, so the comm exclusion does not apply to them.
 */
#include "tfo_common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MSG_PEEK 2

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_STATES 16

struct net_val {
	u64 tcp_active;
	u64 tcp_passive;
	u64 tcp_failed;
	u64 tcp_bytes_sent;
	u64 tcp_bytes_recv;
	u64 tcp_retransmits;
	u64 udp_pkts_sent;
	u64 udp_pkts_recv;
	u64 udp_bytes_sent;
	u64 udp_bytes_recv;
	u64 conn_hist[HIST_SLOTS];
	u64 trans[TCP_STATES * TCP_STATES]; /* [old * 16 + new] */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct net_val);
} tfo_net_stats SEC(".maps");

/* Socket address -> time of CLOSE -> SYN_SENT; removed when it leaves SYN_SENT. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, u64);
} tfo_conn_start SEC(".maps");

static __always_inline struct net_val *stats(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&tfo_net_stats, &zero);
}

/* The counters of a successful send or receive of `ret` bytes on an IPv4/IPv6 TCP or UDP
 * socket by a process not excluded; NULL for anything else. */
static __always_inline struct net_val *inet_io(struct sock *sk, int ret, u16 *proto)
{
	unsigned short family;

	if (ret <= 0)
		return NULL;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	*proto = sk->sk_protocol;
	if (*proto != IPPROTO_TCP && *proto != IPPROTO_UDP)
		return NULL;
	if (excluded_current())
		return NULL;
	return stats();
}

SEC("tp_btf/sock_send_length")
int tfo_sock_send(u64 *ctx)
{
	int ret = (int)ctx[1];
	u16 proto;
	struct net_val *v = inet_io((struct sock *)ctx[0], ret, &proto);

	if (!v)
		return 0;
	if (proto == IPPROTO_TCP) {
		v->tcp_bytes_sent += ret;
	} else {
		v->udp_pkts_sent++;
		v->udp_bytes_sent += ret;
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int tfo_sock_recv(u64 *ctx)
{
	int ret = (int)ctx[1];
	int flags = (int)ctx[2];
	u16 proto;
	struct net_val *v;

	if (flags & MSG_PEEK)
		return 0;
	v = inet_io((struct sock *)ctx[0], ret, &proto);
	if (!v)
		return 0;
	if (proto == IPPROTO_TCP) {
		v->tcp_bytes_recv += ret;
	} else {
		v->udp_pkts_recv++;
		v->udp_bytes_recv += ret;
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int tfo_tcp_state(u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	u32 old = (u32)ctx[1];
	u32 new = (u32)ctx[2];
	u64 key = (u64)sk;
	struct net_val *v;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	v = stats();
	if (!v)
		return 0;
	if (old < TCP_STATES && new < TCP_STATES)
		v->trans[((old & 15) << 4) | (new & 15)]++;
	if (old == TCP_CLOSE && new == TCP_SYN_SENT) {
		u64 now = bpf_ktime_get_ns();

		v->tcp_active++;
		bpf_map_update_elem(&tfo_conn_start, &key, &now, BPF_ANY);
	} else if (old == TCP_SYN_SENT) {
		u64 *ts = bpf_map_lookup_elem(&tfo_conn_start, &key);

		if (new == TCP_ESTABLISHED && ts)
			v->conn_hist[hist_slot(bpf_ktime_get_ns() - *ts)]++;
		else if (new == TCP_CLOSE)
			v->tcp_failed++;
		if (ts)
			bpf_map_delete_elem(&tfo_conn_start, &key);
	} else if (old == TCP_SYN_RECV && new == TCP_ESTABLISHED) {
		v->tcp_passive++;
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int tfo_tcp_retx(u64 *ctx)
{
	int err = (int)ctx[2];
	struct net_val *v;

	if (err)
		return 0;
	v = stats();
	if (v)
		v->tcp_retransmits++;
	return 0;
}
