package apierr_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoFreeReasons walks the repository's Go code (tests and generated
// code aside) for reasons written as string literals instead of the
// constants of this package: a Reason: or ID: field, or the reason argument
// of Conflict, of WriteHTTP or of the gateway's writeError. Untyped string constants
// convert to Reason silently, so only this test keeps the vocabulary in
// one place.
func TestNoFreeReasons(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "gen", "node_modules", ".git", "deploy", "tools":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		literal := func(e ast.Expr) bool {
			lit, ok := e.(*ast.BasicLit)
			return ok && lit.Kind == token.STRING
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				// An ID: key is flagged when its literal reads like a reason
				// (the gateway's error details); other ids are data.
				if k, ok := n.Key.(*ast.Ident); ok && literal(n.Value) &&
					(k.Name == "Reason" || k.Name == "ID" && reasonLike.MatchString(n.Value.(*ast.BasicLit).Value)) {
					t.Errorf("%s: %s: %s written as a string literal; use an apierr.Reason constant", fset.Position(n.Pos()), k.Name, n.Value.(*ast.BasicLit).Value)
				}
			case *ast.CallExpr:
				name := ""
				switch fun := n.Fun.(type) {
				case *ast.SelectorExpr:
					name = fun.Sel.Name
				case *ast.Ident:
					name = fun.Name
				}
				pos := map[string]int{"Conflict": 0, "writeError": 2, "WriteHTTP": 2}
				if i, ok := pos[name]; ok && len(n.Args) > i && literal(n.Args[i]) {
					t.Errorf("%s: %s with the reason %s as a string literal; use an apierr.Reason constant", fset.Position(n.Pos()), name, n.Args[i].(*ast.BasicLit).Value)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reasonLike matches a quoted UPPER_SNAKE_CASE literal.
var reasonLike = regexp.MustCompile(`^"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+"$`)
