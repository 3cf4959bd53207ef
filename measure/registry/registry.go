package registry

import (
	_ "embed"
	"errors"
	"fmt"
	"sync"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Op codes of the internal messages the contract accepts (32 bits, the
// first field of the body). Each is crc32("chrysalis_registry:<name>")
// with bit 31 cleared.
const (
	OpAddImage         uint32 = 0x30828d76
	OpRemoveImage      uint32 = 0x467b968d
	OpAddModel         uint32 = 0x222afbf0
	OpRemoveModel      uint32 = 0x54d3e00b
	OpChangeGovernance uint32 = 0x2179fc4b
)

// Exit codes of the compute phase. A message that fails with any of them
// changes nothing and, when it was sent bounceable, bounces back.
const (
	// ExitCellUnderflow is TVM's own code 9: the body is shorter than its
	// op's layout, or has bits or references after it.
	ExitCellUnderflow = 9
	// ExitNotGovernance: a non-empty body from any sender other than the
	// governance address.
	ExitNotGovernance = 401
	// ExitNotListed: remove_image or remove_model of a hash not listed.
	ExitNotListed = 404
	// ExitAlreadyListed: add_image or add_model of a hash already listed.
	ExitAlreadyListed = 409
	// ExitUnknownOp: the body is shorter than 32 bits or its op is none
	// of the Op* codes.
	ExitUnknownOp = 0xFFFF
)

// Get-method names (the method id is tlb.MethodNameHash(name)).
const (
	MethodIsImageAllowed = "is_image_allowed" // (hash: uint256) -> int: -1 listed, 0 not
	MethodIsModelAllowed = "is_model_allowed" // (hash: uint256) -> int: -1 listed, 0 not
	MethodGetGovernance  = "get_governance"   // () -> slice: MsgAddressInt
	MethodGetSeqno       = "get_seqno"        // () -> int: accepted changes so far
	MethodGetImages      = "get_images"       // () -> cell or null: HashmapE 256 Entry
	MethodGetModels      = "get_models"       // () -> cell or null: HashmapE 256 Entry
)

//go:embed contract/registry.code.boc
var codeBOC []byte

var loadCode = sync.OnceValues(func() (*cell.Cell, error) {
	return cell.FromBOC(codeBOC)
})

// Code returns the compiled contract code, the cell embedded from
// contract/registry.code.boc.
func Code() *cell.Cell {
	c, err := loadCode()
	if err != nil {
		// The BOC is embedded at build time and checked by the tests and
		// by ci/tolk-check.sh; a bad one is a broken build.
		panic(fmt.Sprintf("registry: embedded contract/registry.code.boc: %v", err))
	}
	return c
}

// CodeHash returns the representation hash of Code, the value
// contract/registry.code.hash records.
func CodeHash() [32]byte {
	return [32]byte(Code().Hash())
}

// checkGovernance accepts a standard (addr_std, no anycast) address in the
// basechain (0) or the masterchain (-1).
func checkGovernance(what string, a *address.Address) error {
	if a == nil {
		return fmt.Errorf("%s: no address", what)
	}
	if a.Type() != address.StdAddress {
		return fmt.Errorf("%s %s: not a standard internal address", what, a.StringRaw())
	}
	if a.Anycast() != nil {
		return fmt.Errorf("%s %s: anycast addresses are not accepted", what, a.StringRaw())
	}
	if wc := a.Workchain(); wc != 0 && wc != -1 {
		return fmt.Errorf("%s %s: workchain %d is neither 0 nor -1", what, a.StringRaw(), wc)
	}
	return nil
}

// InitialData returns the account data of a fresh registry: governance,
// seqno 0, no images, no models.
func InitialData(governance *address.Address) (*cell.Cell, error) {
	if err := checkGovernance("governance", governance); err != nil {
		return nil, err
	}
	return cell.BeginCell().
		MustStoreAddr(governance).
		MustStoreUInt(0, 32).
		MustStoreMaybeRef(nil).
		MustStoreMaybeRef(nil).
		EndCell(), nil
}

// StateInit returns the state init that deploys a registry governed by
// governance: Code and InitialData, nothing else.
func StateInit(governance *address.Address) (*tlb.StateInit, error) {
	data, err := InitialData(governance)
	if err != nil {
		return nil, err
	}
	return &tlb.StateInit{Code: Code(), Data: data}, nil
}

// Address returns the basechain address (bounceable form) of the registry
// StateInit(governance) deploys.
func Address(governance *address.Address) (*address.Address, error) {
	si, err := StateInit(governance)
	if err != nil {
		return nil, err
	}
	c, err := tlb.ToCell(si)
	if err != nil {
		return nil, fmt.Errorf("registry state init for %s: %w", governance.StringRaw(), err)
	}
	return address.NewAddress(0, 0, c.Hash()), nil
}

func hashBody(op uint32, queryID uint64, hash [32]byte) *cell.Cell {
	return cell.BeginCell().
		MustStoreUInt(uint64(op), 32).
		MustStoreUInt(queryID, 64).
		MustStoreSlice(hash[:], 256).
		EndCell()
}

// AddImage returns the body add_image#30828d76 query_id:uint64 hash:bits256.
func AddImage(queryID uint64, hash [32]byte) *cell.Cell {
	return hashBody(OpAddImage, queryID, hash)
}

// RemoveImage returns the body remove_image#467b968d query_id:uint64 hash:bits256.
func RemoveImage(queryID uint64, hash [32]byte) *cell.Cell {
	return hashBody(OpRemoveImage, queryID, hash)
}

// AddModel returns the body add_model#222afbf0 query_id:uint64 hash:bits256.
func AddModel(queryID uint64, hash [32]byte) *cell.Cell {
	return hashBody(OpAddModel, queryID, hash)
}

// RemoveModel returns the body remove_model#54d3e00b query_id:uint64 hash:bits256.
func RemoveModel(queryID uint64, hash [32]byte) *cell.Cell {
	return hashBody(OpRemoveModel, queryID, hash)
}

// ChangeGovernance returns the body change_governance#2179fc4b
// query_id:uint64 new_governance:MsgAddressInt (addr_std, no anycast).
func ChangeGovernance(queryID uint64, newGovernance *address.Address) (*cell.Cell, error) {
	if err := checkGovernance("new governance", newGovernance); err != nil {
		return nil, err
	}
	return cell.BeginCell().
		MustStoreUInt(uint64(OpChangeGovernance), 32).
		MustStoreUInt(queryID, 64).
		MustStoreAddr(newGovernance).
		EndCell(), nil
}

var errNilCell = errors.New("no cell")
