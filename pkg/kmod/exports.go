package kmod

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// ksymtabPrefix starts the name of the symbol the kernel's EXPORT_SYMBOL
// (and its _GPL and namespaced forms) defines for each export: the entry
// of the export table, __ksymtab_<name>.
const ksymtabPrefix = "__ksymtab_"

// ReadExports returns the names of the symbols the module in r exports to
// other modules, sorted: what depmod writes to modules.symbols, so that a
// symbol_request() can find the module that provides a symbol. They are
// read from the module's symbol table rather than from __ksymtab_strings,
// which also holds the names of symbol namespaces.
func ReadExports(r io.ReaderAt) ([]string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if errors.Is(err, elf.ErrNoSymbols) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read symbol table: %w", err)
	}
	var out []string
	for _, s := range syms {
		name, ok := strings.CutPrefix(s.Name, ksymtabPrefix)
		if !ok || name == "" || s.Section == elf.SHN_UNDEF || elf.ST_TYPE(s.Info) == elf.STT_SECTION {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}
