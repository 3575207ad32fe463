# shellcheck shell=bash
# A small internet in network namespaces, for the NAT traversal tests. Sourced by run.sh;
# see README.md for the picture. Every name is unique per topology (netns "rpnt-PID-RAND-ROLE";
# interface names live inside the namespaces), so parallel runs and leftovers never clash, and
# topo_up arranges for topo_down on EXIT, INT and TERM.
#
# Needs: NSTOOL (path of the nstool binary), set by run.sh.

NT_SKIP=77 # exit code of a skipped case (automake's convention)

# Public segment 203.0.113.0/24 (TEST-NET-3): relays .1 .2 ..., NAT routers .10 (a) and .20 (b).
NT_PUB_NET=203.0.113
NAT_A_IP=$NT_PUB_NET.10
NAT_B_IP=$NT_PUB_NET.20
HOST_A_IP=10.0.1.2
HOST_B_IP=10.0.2.2
LAN_A_GW=10.0.1.1
LAN_B_GW=10.0.2.1

NT_ID=
NT_DIR=
NT_NS=()
NT_PIDS=()
declare -A NT_PID=()

skip() {
    echo "SKIP: $*"
    exit "$NT_SKIP"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "-- $*"
}

# The namespace name of a role (pub, r1, r2, nat-a, nat-b, host-a, host-b).
nt_ns() {
    echo "$NT_ID-$1"
}

# run_in ROLE CMD...: runs CMD inside the role's namespace.
run_in() {
    local role=$1
    shift
    ip netns exec "$(nt_ns "$role")" "$@"
}

# Why the netns tests cannot run here, or nothing when they can. Checks, never assumes.
nt_unmet() {
    [ "$(id -u)" -eq 0 ] || {
        echo "needs root (network namespaces, nftables)"
        return
    }
    local t
    for t in ip nft timeout; do
        command -v "$t" >/dev/null 2>&1 || {
            echo "'$t' is missing (make deps installs iproute2 and nftables)"
            return
        }
    done
    local probe="rpnt-probe-$$-$RANDOM" why=
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "'ip netns add' does not work here (no CONFIG_NET_NS or no permission)"
        return
    fi
    local err
    if ! err=$(ip netns exec "$probe" nft -f - 2>&1 <<'EOF'
table ip t {
    chain c {
        type nat hook postrouting priority srcnat;
        masquerade random,fully-random
    }
}
EOF
    ); then
        why="nftables NAT does not work in a namespace (kernel without nf_tables/nft_masq?): $(
            echo "$err" | head -n 1)"
    fi
    ip netns del "$probe"
    [ -z "$why" ] || echo "$why"
}

# How WAN delay is made: "netem" (tc qdisc) when the kernel has sch_netem, else "wire" (nstool
# wire: two TAP devices joined by a userspace delay line). NETNS_DELAY=netem|wire forces one.
nt_delay_impl() {
    if [ -n "${NT_DELAY_IMPL:-}" ]; then
        echo "$NT_DELAY_IMPL"
        return
    fi
    local impl=${NETNS_DELAY:-auto}
    if [ "$impl" = auto ]; then
        local probe="rpnt-probe-$$-$RANDOM"
        impl=none
        if ip netns add "$probe" 2>/dev/null; then
            if command -v tc >/dev/null 2>&1 &&
                ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null &&
                tc -n "$probe" qdisc add dev p0 root netem delay 1ms 2>/dev/null; then
                impl=netem
            elif [ -c /dev/net/tun ]; then
                impl=wire
            fi
            ip netns del "$probe"
        fi
    fi
    NT_DELAY_IMPL=$impl
    echo "$impl"
}

nt_addns() {
    local ns
    ns=$(nt_ns "$1")
    ip netns add "$ns"
    NT_NS+=("$ns")
    # IPv4 only: no router solicitations, DAD or MLD chatter on the links and in conntrack.
    ip netns exec "$ns" sh -c "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6
        echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6
        echo ${2:-0} >/proc/sys/net/ipv4/ip_forward"
    nt_ip "$1" link set lo up
}

# nt_ip ROLE|- ARGS...: queues an `ip` command for ROLE's namespace (- for the root one); topo_up
# runs each queue as one `ip -batch` (a few processes instead of dozens).
declare -A NT_BATCH=()
nt_ip() {
    local role=$1
    shift
    NT_BATCH[$role]+="$*"$'\n'
}

nt_ip_flush() {
    local role
    [ -z "${NT_BATCH[-]:-}" ] || ip -batch - <<<"${NT_BATCH[-]}"
    for role in "${!NT_BATCH[@]}"; do
        [ "$role" = - ] || ip -n "$(nt_ns "$role")" -batch - <<<"${NT_BATCH[$role]}"
    done
    NT_BATCH=()
}

# nt_link ROLE1 IF1 ROLE2 IF2: a veth cable between two namespaces (queued).
nt_link() {
    nt_ip - link add name "$2" netns "$(nt_ns "$1")" type veth peer name "$4" netns "$(nt_ns "$3")"
}

# nt_link_delayed ROLE1 IF1 ROLE2 IF2 MS: a cable that delays each direction by MS.
nt_link_delayed() {
    local a b
    a=$(nt_ns "$1")
    b=$(nt_ns "$3")
    case $(nt_delay_impl) in
    netem)
        ip link add name "$2" netns "$a" type veth peer name "$4" netns "$b"
        tc -n "$a" qdisc add dev "$2" root netem delay "${5}ms" limit 10000
        tc -n "$b" qdisc add dev "$4" root netem delay "${5}ms" limit 10000
        ;;
    wire)
        ip -n "$a" tuntap add dev "$2" mode tap
        ip -n "$b" tuntap add dev "$4" mode tap
        "$NSTOOL" wire "$a" "$2" "$b" "$4" "$5" >"$NT_DIR/wire-$2-$4.log" 2>&1 &
        NT_PIDS+=($!)
        NT_PID[wire-$2-$4]=$!
        ;;
    *) skip "no way to delay packets: the kernel lacks sch_netem and /dev/net/tun" ;;
    esac
}

# Waits until IF in ROLE has carrier (a wire attaches to its TAP devices asynchronously).
nt_wait_carrier() {
    local i
    for ((i = 0; i < 500; i++)); do
        ip -n "$(nt_ns "$1")" -o link show dev "$2" | grep -q LOWER_UP && return 0
        sleep 0.02
    done
    fail "$2 in $1 has no carrier after 10 s (see $NT_DIR/wire-*.log)"
}

# nat_set ROLE TYPE: loads the router's nftables ruleset, one of
#   cone       masquerade (keeps the source port when it is free, so the mapping is endpoint-
#              independent in practice); inbound only for conntrack-established/related flows
#   symmetric  the same filtering, masquerade random,fully-random: every new flow gets a random
#              public port, so the port the rendezvous saw is not the one a punch uses
#   route      a plain router: no NAT, no filtering (a control for tests of the filter)
# cone and symmetric count bare SYNs from the WAN in counters syn_in and syn_dropped (syn_count).
nat_set() {
    local ns masq
    ns=$(nt_ns "$1")
    case $2 in
    cone) masq="masquerade" ;;
    symmetric) masq="masquerade random,fully-random" ;;
    route)
        ip netns exec "$ns" nft -f - <<'EOF'
flush ruleset
EOF
        return
        ;;
    *) fail "nat_set: unknown NAT type '$2' (cone, symmetric, route)" ;;
    esac
    ip netns exec "$ns" nft -f - <<EOF
flush ruleset
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" $masq
    }
}
table inet filter {
    counter syn_in {}
    counter syn_dropped {}
    chain input {
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
        ct state established,related accept
        iifname "lan0" accept
        iifname "wan0" tcp flags & (syn | ack) == syn counter name "syn_dropped"
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        iifname "wan0" tcp flags & (syn | ack) == syn ct state established counter name "syn_in"
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        iifname "wan0" tcp flags & (syn | ack) == syn counter name "syn_dropped"
    }
}
EOF
}

# topo_up [--nat-a TYPE] [--nat-b TYPE] [--delay-a MS] [--delay-b MS] [--relays N]
#
#   r1 (203.0.113.1) ... rN ──┐
#                           pub (bridge br0, 203.0.113.0/24)
#       nat-a (wan0 .10) ─────┤────── nat-b (wan0 .20)      WAN links: optional delay
#       lan0 10.0.1.1                 lan0 10.0.2.1
#       host-a 10.0.1.2               host-b 10.0.2.2
#
# Sets R1_IP.. RN_IP; NAT_A_IP, NAT_B_IP, HOST_A_IP, HOST_B_IP are fixed above.
topo_up() {
    local nat_a=cone nat_b=cone delay_a=0 delay_b=0 relays=2 i side role
    while [ $# -gt 0 ]; do
        case $1 in
        --nat-a) nat_a=$2 ;;
        --nat-b) nat_b=$2 ;;
        --delay-a) delay_a=$2 ;;
        --delay-b) delay_b=$2 ;;
        --relays) relays=$2 ;;
        *) fail "topo_up: unknown option '$1'" ;;
        esac
        shift 2
    done
    if [ -z "${NT_CHECKED:-}" ]; then # run.sh checked already
        local why
        why=$(nt_unmet)
        [ -z "$why" ] || skip "$why"
    fi
    [ -n "${NT_DELAY_IMPL:-}" ] || NT_DELAY_IMPL=$(nt_delay_impl)
    NT_ID="rpnt-$BASHPID-$RANDOM"
    NT_DIR=$(mktemp -d "/tmp/$NT_ID.XXXX")
    trap topo_down EXIT
    trap 'trap - ERR; exit 130' INT
    trap 'trap - ERR; exit 143' TERM

    local all=(pub)
    for ((i = 1; i <= relays; i++)); do all+=("r$i"); done
    for role in "${all[@]}" host-a host-b; do nt_addns "$role"; done
    for role in nat-a nat-b; do nt_addns "$role" 1; done
    nt_ip pub link add br0 type bridge
    nt_ip pub link set br0 up
    for ((i = 1; i <= relays; i++)); do
        nt_link "r$i" eth0 pub "pr$i"
        nt_ip "r$i" addr add "$NT_PUB_NET.$i/24" dev eth0
        nt_ip "r$i" link set eth0 up
        nt_ip pub link set "pr$i" master br0 up
        printf -v "R${i}_IP" '%s' "$NT_PUB_NET.$i"
    done
    for side in a b; do
        local nat="nat-$side" host="host-$side" delay wan gw hip
        if [ $side = a ]; then
            delay=$delay_a wan=$NAT_A_IP gw=$LAN_A_GW hip=$HOST_A_IP
        else
            delay=$delay_b wan=$NAT_B_IP gw=$LAN_B_GW hip=$HOST_B_IP
        fi
        if [ "$delay" -gt 0 ]; then
            nt_link_delayed "$nat" wan0 pub "pn$side" "$delay"
        else
            nt_link "$nat" wan0 pub "pn$side"
        fi
        nt_ip pub link set "pn$side" master br0 up
        nt_ip "$nat" addr add "$wan/24" dev wan0
        nt_ip "$nat" link set wan0 up
        nt_link "$nat" lan0 "$host" eth0
        nt_ip "$nat" addr add "$gw/24" dev lan0
        nt_ip "$nat" link set lan0 up
        nt_ip "$host" addr add "$hip/24" dev eth0
        nt_ip "$host" link set eth0 up
        nt_ip "$host" route add default via "$gw"
    done
    nt_ip_flush
    nat_set nat-a "$nat_a"
    nat_set nat-b "$nat_b"
    if [ "$(nt_delay_impl)" = wire ]; then
        [ "$delay_a" -eq 0 ] || nt_wait_carrier nat-a wan0
        [ "$delay_a" -eq 0 ] || nt_wait_carrier pub pna
        [ "$delay_b" -eq 0 ] || nt_wait_carrier nat-b wan0
        [ "$delay_b" -eq 0 ] || nt_wait_carrier pub pnb
    fi
    note "topology $NT_ID: nat-a $nat_a delay ${delay_a}ms, nat-b $nat_b delay ${delay_b}ms," \
        "$relays relay(s), delay by $(if [ "$delay_a$delay_b" = 00 ]; then echo none; else nt_delay_impl; fi)"
}

# Stops everything this topology started and deletes its namespaces. Idempotent; on failure it
# first prints the tail of every spawned program's output.
topo_down() {
    local rc=$? name pid ns i
    [ -n "$NT_ID" ] || return 0
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ] && [ "$rc" -ne "$NT_SKIP" ] && [ -d "$NT_DIR" ]; then
        for name in "$NT_DIR"/*; do
            [ -s "$name" ] || continue
            echo "---- ${name##*/} (last 20 lines)"
            tail -n 20 "$name"
        done
    fi
    for pid in "${NT_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 40; i++)); do
        local alive=0
        for pid in "${NT_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.05
    done
    for pid in "${NT_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    # Anything else still inside our namespaces was started by this test (they are ours alone).
    for ns in "${NT_NS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    for ((i = ${#NT_NS[@]} - 1; i >= 0; i--)); do ip netns del "${NT_NS[i]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${NETNS_KEEP_LOGS:-0}" = 1 ] || rm -rf "$NT_DIR"
    NT_ID=
    NT_NS=()
    NT_PIDS=()
    return "$rc"
}

# spawn ROLE NAME CMD...: starts CMD in the background inside ROLE; stdout goes to $(out NAME),
# stderr to $(out NAME).err. It is stopped by topo_down.
spawn() {
    local role=$1 name=$2
    shift 2
    ip netns exec "$(nt_ns "$role")" "$@" >"$NT_DIR/$name" 2>"$NT_DIR/$name.err" &
    NT_PIDS+=($!)
    NT_PID[$name]=$!
}

out() {
    echo "$NT_DIR/$1"
}

# stop NAME [SIGNAL]: stops a spawned program (TERM by default; KILL after 5 s) and returns its
# exit status, e.g. to see a sanitizer's verdict on a ringp2p node.
stop() {
    local pid=${NT_PID[$1]} rc=0 i
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    return "$rc"
}

# finish NAME: waits for a spawned program and returns its exit status.
finish() {
    local rc=0
    wait "${NT_PID[$1]}" || rc=$?
    return "$rc"
}

# wait_for FILE REGEX [SECONDS]: waits until a line of FILE matches (grep -E).
wait_for() {
    local file=$1 re=$2 secs=${3:-5} i
    for ((i = 0; i < secs * 20; i++)); do
        grep -qE -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "wait_for: no line matching '$re' in ${file##*/} after ${secs}s" >&2
    return 1
}

# wait_listen ROLE PORT [SECONDS]: waits until something listens on TCP PORT in ROLE.
wait_listen() {
    local secs=${3:-5} i
    for ((i = 0; i < secs * 20; i++)); do
        [ -n "$(run_in "$1" ss -Htln "sport = :$2")" ] && return 0
        sleep 0.05
    done
    fail "nothing listens on tcp port $2 in $1 after ${secs}s"
}

# field KEY LINE: the value of KEY=VALUE in an nstool output line.
field() {
    local kv
    for kv in $2; do
        [ "${kv%%=*}" = "$1" ] && {
            echo "${kv#*=}"
            return 0
        }
    done
    return 1
}

# expect_eq WHAT GOT WANT
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    note "$1: $2"
}

# syn_count ROLE in|dropped: bare SYNs (no ACK) from the WAN that the router let in (they matched
# a mapping: a simultaneous open) or dropped (unsolicited), counted by its ruleset.
syn_count() {
    run_in "$1" nft list counter inet filter "syn_$2" | awk '$1 == "packets" { print $2 }'
}

# need_ringp2p: skips the case unless run.sh was given a ringp2p binary (make netns gives it).
need_ringp2p() {
    [[ -n ${RINGP2P:-} && -x $RINGP2P ]] ||
        skip "no ringp2p binary ('${RINGP2P:-}'; run.sh --ringp2p BIN)"
}

# json_val KEY LINE: the value of "KEY" in a one-line JSON object, string quotes removed (for
# ringp2p's flat event lines: if KEY occurs more than once, the last one wins).
json_val() {
    sed -n -E 's/.*"'"$1"'":("([^"]*)"|([^,}]*)).*/\2\3/p' <<<"$2" | head -n 1
}

# conntrack ROLE: the router's connection tracking table (/proc/net/nf_conntrack).
conntrack() {
    run_in "$1" cat /proc/net/nf_conntrack
}

# ---- ringp2p nodes (case_relay.sh, case_autonat.sh) -------------------------------------------

# json_strs KEY LINE: the strings of the array "KEY" (such as "addrs") in a one-line JSON object,
# one per line; nothing if there is no such array or it is empty.
json_strs() {
    sed -n -E 's/.*"'"$1"'":\[([^]]*)\].*/\1/p' <<<"$2" | head -n 1 | grep -oE '"[^"]*"' |
        tr -d '"' || true
}

# node_id NAME [SECONDS]: waits for the {"event":"ready"} line of the ringp2p node NAME (spawned
# with --json) and prints its peer ID.
node_id() {
    wait_for "$(out "$1")" '"event":"ready"' "${2:-10}" ||
        fail "node $1 did not start: $(tail -n 3 "$(out "$1").err" 2>/dev/null | tr '\n' ' ')"
    json_val peerId "$(grep -m1 '"event":"ready"' "$(out "$1")")"
}

# first_match FILE REGEX: the first line of FILE matching REGEX (grep -E), or nothing.
first_match() {
    grep -m1 -E -- "$2" "$1" 2>/dev/null || true
}

# expect_pings_relayed ROLE MADDR COUNT: `ringp2p ping MADDR --json` from ROLE must answer all
# COUNT pings, each over a relayed connection.
expect_pings_relayed() {
    local role=$1 ma=$2 count=$3 o rc=0 n
    o=$(run_in "$role" "$RINGP2P" ping "$ma" --count "$count" --interval 0.2 --timeout 5 --json \
        2>&1) || rc=$?
    note "ping from $role:"$'\n'"$o"
    [ "$rc" -eq 0 ] || fail "ping $ma from $role: exit $rc, want $count answered pings"
    n=$(grep -cE '"event":"ping".*"rttUs":[0-9]+,"relayed":true' <<<"$o" || true)
    expect_eq "pings from $role answered over a relayed connection" "$n" "$count"
}
