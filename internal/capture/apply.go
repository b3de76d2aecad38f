package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/sinewmesh/sinew/internal/ports"
	"golang.org/x/sys/unix"
)

// ErrNoNetAdmin means the process may not change the network namespace's nftables: it lacks CAP_NET_ADMIN.
// Retrying does not help; the init container needs the NET_ADMIN capability.
var ErrNoNetAdmin = errors.New("programming nftables needs the CAP_NET_ADMIN capability " +
	"(give the init container securityContext.capabilities.add: [NET_ADMIN, NET_RAW])")

const capNetAdmin = 12

// HasNetAdmin reports whether this process's effective capabilities include CAP_NET_ADMIN.
func HasNetAdmin() (bool, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("/proc/self/status CapEff %q: %w", strings.TrimSpace(v), err)
			}
			return caps&(1<<capNetAdmin) != 0, nil
		}
	}
	return false, errors.New("/proc/self/status has no CapEff line")
}

// Apply installs the capture for c in the current network namespace, replacing any table an earlier run left:
// the delete and the new table go to the kernel in one transaction, so there is no moment without capture and
// re-running never duplicates rules. It returns the rules it installed.
func Apply(c Config) ([]Rule, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if ok, err := HasNetAdmin(); err == nil && !ok {
		return nil, ErrNoNetAdmin
	}
	conn, err := nftables.New()
	if err != nil {
		return nil, netlinkErr("open netlink", err)
	}
	rules := Rules(c)
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	// add (a no-op if present) + delete makes the delete valid whether or not an earlier run left the table
	conn.AddTable(table)
	conn.DelTable(table)
	conn.AddTable(table)
	chains := map[string]*nftables.Chain{}
	accept := nftables.ChainPolicyAccept
	for _, ch := range []struct {
		name string
		hook *nftables.ChainHook
	}{{ChainInbound, nftables.ChainHookPrerouting}, {ChainOutbound, nftables.ChainHookOutput}} {
		chains[ch.name] = conn.AddChain(&nftables.Chain{
			Name: ch.name, Table: table, Type: nftables.ChainTypeNAT, Hooknum: ch.hook,
			Priority: nftables.ChainPriorityNATDest, Policy: &accept,
		})
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{
			Table: table, Chain: chains[r.Chain], Exprs: r.exprs(),
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment),
		})
	}
	if err := conn.Flush(); err != nil {
		return nil, netlinkErr("install table inet "+TableName, err)
	}
	return rules, nil
}

// Installed returns how many rules each of our chains holds in the current network namespace (for checks and
// tests); a missing table gives an empty map.
func Installed() (map[string]int, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, netlinkErr("open netlink", err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, netlinkErr("list tables", err)
	}
	out := map[string]int{}
	for _, t := range tables {
		if t.Name != TableName {
			continue
		}
		chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, netlinkErr("list chains", err)
		}
		for _, ch := range chains {
			if ch.Table.Name != TableName {
				continue
			}
			rs, err := conn.GetRules(t, ch)
			if err != nil {
				return nil, netlinkErr("list rules", err)
			}
			out[ch.Name] += len(rs)
		}
	}
	return out, nil
}

func netlinkErr(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: %w: %v", what, ErrNoNetAdmin, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

const natRangeProtoSpecified = 0x2 // NF_NAT_RANGE_PROTO_SPECIFIED

// exprs compiles the rule to nftables expressions (the same sequence `nft` produces for its text form).
func (r Rule) exprs() []expr.Any {
	var e []expr.Any
	if r.Ports != (ports.Range{}) {
		e = append(e, l4protoTCP()...)
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		if r.Ports.From == r.Ports.To {
			e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Ports.From)})
		} else {
			e = append(e, &expr.Range{Op: expr.CmpOpEq, Register: 1,
				FromData: binaryutil.BigEndian.PutUint16(r.Ports.From), ToData: binaryutil.BigEndian.PutUint16(r.Ports.To)})
		}
	} else {
		e = append(e, l4protoTCP()...)
	}
	if r.UID != nil {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(*r.UID)})
	}
	if r.Dst.IsValid() {
		proto, offset := byte(unix.NFPROTO_IPV4), uint32(16) // IPv4 header: daddr at 16, 4 bytes
		if r.Dst.Addr().Is6() {
			proto, offset = unix.NFPROTO_IPV6, 24 // IPv6 header: daddr at 24, 16 bytes
		}
		addr := r.Dst.Addr().AsSlice()
		n := uint32(len(addr))
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n})
		if r.Dst.Bits() < int(n*8) {
			e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n,
				Mask: net.CIDRMask(r.Dst.Bits(), int(n*8)), Xor: make([]byte, n)})
		}
		e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
	}
	if r.RedirectTo != 0 {
		e = append(e,
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.RedirectTo)},
			&expr.Redir{RegisterProtoMin: 1, Flags: natRangeProtoSpecified})
	} else {
		e = append(e, &expr.Verdict{Kind: expr.VerdictReturn})
	}
	return e
}

func l4protoTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}
