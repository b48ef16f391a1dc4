#!/bin/sh
# Issue 14: client / server / peer namespaces joined by veth pairs, IPv4 and IPv6.
#   tern-bpf-c  c0 10.77.1.2 fd77:1::2 --- s0 10.77.1.1 fd77:1::1  tern-bpf-s
#               s1 10.77.2.1 fd77:2::1 --- p0 10.77.2.2 fd77:2::2  tern-bpf-p
# bed.sh up [partial] | down
# Default: TX checksum offload off on c0/p0, so packets cross the veths with a
# full checksum (CHECKSUM_NONE) and the receiver verifies it in software: a
# wrong rewrite shows as Udp(6)InCsumErrors. "partial": the senders leave the
# checksum to the device (CHECKSUM_PARTIAL, the program's payload-move path)
# and s0/s1 have TX offload off, so the redirected packet's checksum is
# completed in software at the server's egress and verified by the receiver
# (with offload on everywhere veth would never compute or check it).
# bpf_fib_lookup returns FWD_DISABLED unless forwarding is on for the lookup's
# interface, even with BPF_FIB_LOOKUP_OUTPUT: per interface on s0/s1 (the
# entries' oif), not the global ip_forward.
set -e
C=tern-bpf-c S=tern-bpf-s P=tern-bpf-p MODE=$2
case "$1" in
up)
    for n in $C $S $P; do ip netns add $n; ip -n $n link set lo up; done
    ip link add c0 netns $C type veth peer name s0 netns $S
    ip link add s1 netns $S type veth peer name p0 netns $P
    ip -n $C addr add 10.77.1.2/24 dev c0; ip -n $C addr add fd77:1::2/64 dev c0 nodad
    ip -n $S addr add 10.77.1.1/24 dev s0; ip -n $S addr add fd77:1::1/64 dev s0 nodad
    ip -n $S addr add 10.77.2.1/24 dev s1; ip -n $S addr add fd77:2::1/64 dev s1 nodad
    ip -n $P addr add 10.77.2.2/24 dev p0; ip -n $P addr add fd77:2::2/64 dev p0 nodad
    for l in "$C c0" "$S s0" "$S s1" "$P p0"; do set -- $l; ip -n $1 link set $2 up; done
    ip -n $C route add default via 10.77.1.1; ip -n $C -6 route add default via fd77:1::1
    ip -n $P route add default via 10.77.2.1; ip -n $P -6 route add default via fd77:2::1
    for i in s0 s1; do
        ip netns exec $S sysctl -qw net.ipv4.conf.$i.forwarding=1 net.ipv6.conf.$i.forwarding=1
    done
    if [ "$MODE" = partial ]; then
        ip netns exec $S ethtool -K s0 tx off >/dev/null
        ip netns exec $S ethtool -K s1 tx off >/dev/null
    else
        ip netns exec $C ethtool -K c0 tx off >/dev/null
        ip netns exec $P ethtool -K p0 tx off >/dev/null
    fi
    ;;
down)
    for n in $C $S $P; do ip netns del $n 2>/dev/null || true; done
    ;;
*)
    echo "usage: $0 up [partial] | down" >&2; exit 2
    ;;
esac
