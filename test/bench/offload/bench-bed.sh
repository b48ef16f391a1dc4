#!/bin/sh
# The offload benchmark's test bed (issue 14; bed.sh is the functional test's, tern-bpf-*): client, server and peer network namespaces joined
# by two veth pairs, the server in the middle.
#
#   tern-bench-c  c0 10.78.1.2/24 --- s0 10.78.1.1/24  tern-bench-s  s1 10.78.2.1/24 --- p0 10.78.2.2/24  tern-bench-p
#
#   bench-bed.sh up [csum-offload-on]   create it (an old one is removed first)
#   bench-bed.sh down                   remove it
#   bench-bed.sh check                  exit 0 if it is up
#
# TX checksum offload is off on c0 and p0 (unless csum-offload-on), so datagrams cross the veths
# with a full checksum and the receiver verifies it in software: a wrong rewrite in the tc program
# shows as UdpInCsumErrors, and every mode pays the same checksum work.  Needs root, iproute2, ethtool.
set -e
C=tern-bench-c S=tern-bench-s P=tern-bench-p
case "$1" in
up)
    "$0" down
    for n in $C $S $P; do ip netns add $n; ip -n $n link set lo up; done
    ip link add c0 netns $C type veth peer name s0 netns $S
    ip link add s1 netns $S type veth peer name p0 netns $P
    ip -n $C addr add 10.78.1.2/24 dev c0; ip -n $C link set c0 up
    ip -n $S addr add 10.78.1.1/24 dev s0; ip -n $S link set s0 up
    ip -n $S addr add 10.78.2.1/24 dev s1; ip -n $S link set s1 up
    ip -n $P addr add 10.78.2.2/24 dev p0; ip -n $P link set p0 up
    ip -n $C route add default via 10.78.1.1
    ip -n $P route add default via 10.78.2.1
    ip netns exec $S sysctl -qw net.ipv4.ip_forward=1
    if [ "$2" != csum-offload-on ]; then
        ip netns exec $C ethtool -K c0 tx off >/dev/null
        ip netns exec $P ethtool -K p0 tx off >/dev/null
    fi
    # permanent neighbours: no ARP in the measurements, none expiring in the middle of one
    mac() { ip -n $1 -br link show $2 | awk '{print $3}'; }
    ip -n $C neigh replace 10.78.1.1 lladdr "$(mac $S s0)" dev c0 nud permanent
    ip -n $S neigh replace 10.78.1.2 lladdr "$(mac $C c0)" dev s0 nud permanent
    ip -n $S neigh replace 10.78.2.2 lladdr "$(mac $P p0)" dev s1 nud permanent
    ip -n $P neigh replace 10.78.2.1 lladdr "$(mac $S s1)" dev p0 nud permanent
    ;;
down)
    for n in $C $S $P; do ip netns del $n 2>/dev/null || true; done
    ;;
check)
    for n in $C $S $P; do ip netns exec $n true 2>/dev/null || exit 1; done
    ;;
*)
    echo "usage: $0 up [csum-offload-on] | down | check" >&2; exit 2
    ;;
esac
