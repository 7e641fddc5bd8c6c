package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/livemigrate/livemigrate/internal/engine"
)

// manCodes reads the EXIT STATUS table of the man page source.
func manCodes(t *testing.T) map[int]bool {
	t.Helper()
	b, err := os.ReadFile("../../docs/livemigrate.8.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(b)
	i := strings.Index(sec, "## EXIT STATUS")
	if i < 0 {
		t.Fatal("no EXIT STATUS section in docs/livemigrate.8.md")
	}
	sec = sec[i:]
	if j := strings.Index(sec[3:], "\n## "); j >= 0 {
		sec = sec[:j+3]
	}
	codes := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(sec, -1) {
		n, _ := strconv.Atoi(m[1])
		codes[n] = true
	}
	return codes
}

// constCodes reads every Exit* constant the engine declares, from source, so
// a constant missing from engine.ExitCodes is found too.
func constCodes(t *testing.T) map[string]int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../internal/engine/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Exit") {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.INT {
			v, _ := strconv.Atoi(lit.Value)
			out[vs.Names[0].Name] = v
		}
		return true
	})
	return out
}

// literalReturns finds integer literals returned by the command's functions
// that return an exit code (the run* functions and their helpers).
func literalReturns(t *testing.T) map[int][]string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	out := map[int][]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fd, ok := n.(*ast.FuncDecl)
			if !ok || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				return true
			}
			if id, ok := fd.Type.Results.List[0].Type.(*ast.Ident); !ok || id.Name != "int" {
				return true
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if _, ok := n.(*ast.FuncLit); ok {
					return false
				}
				rs, ok := n.(*ast.ReturnStmt)
				if !ok || len(rs.Results) != 1 {
					return true
				}
				if lit, ok := rs.Results[0].(*ast.BasicLit); ok && lit.Kind == token.INT {
					v, _ := strconv.Atoi(lit.Value)
					out[v] = append(out[v], fset.Position(rs.Pos()).String())
				}
				return true
			})
			return false
		})
	}
	return out
}

// TestExitCodesDocumented holds the binary's exit codes against the man
// page's table, both ways: a code the binary can return that the table
// lacks fails, and so does a row for a code nothing defines.
func TestExitCodesDocumented(t *testing.T) {
	man := manCodes(t)
	consts := constCodes(t)
	listed := map[int]bool{}
	for _, c := range engine.ExitCodes {
		listed[c] = true
	}
	defined := map[int]bool{}
	for name, v := range consts {
		defined[v] = true
		if !listed[v] {
			t.Errorf("%s = %d is missing from engine.ExitCodes", name, v)
		}
		if !man[v] {
			t.Errorf("%s = %d is not in the EXIT STATUS table of docs/livemigrate.8.md", name, v)
		}
	}
	for v, where := range literalReturns(t) {
		if !man[v] {
			t.Errorf("exit code %d returned at %v is not in the man page's table", v, where)
		}
		defined[v] = true
	}
	var extra []int
	for v := range man {
		if !defined[v] {
			extra = append(extra, v)
		}
	}
	sort.Ints(extra)
	if len(extra) > 0 {
		t.Errorf("the man page lists codes nothing defines: %v", extra)
	}
	if len(consts) < 20 {
		t.Fatalf("found only %d Exit constants: the parser missed them", len(consts))
	}
}
