package apierr

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"regexp"
	"testing"

	"google.golang.org/grpc/codes"
)

var upperSnake = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// TestReasonsWellFormed keeps the vocabulary what clients rely on: every
// reason UPPER_SNAKE_CASE and distinct.
func TestReasonsWellFormed(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if !upperSnake.MatchString(string(r)) {
			t.Errorf("reason %q is not UPPER_SNAKE_CASE", r)
		}
		if seen[r] {
			t.Errorf("reason %q is declared twice", r)
		}
		seen[r] = true
	}
}

// TestReasonsListed checks that Reasons lists every constant of type
// Reason declared in this package, so the well-formedness test sees a
// newly added one.
func TestReasonsListed(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range Reasons() {
		listed[string(r)] = true
	}
	declared := 0
	for name, pkg := range pkgs {
		if name != "apierr" {
			continue
		}
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					v := s.(*ast.ValueSpec)
					if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Reason" {
						continue
					}
					for i, n := range v.Names {
						lit, ok := v.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							t.Errorf("reason %s is not a string literal", n.Name)
							continue
						}
						declared++
						if !listed[lit.Value[1:len(lit.Value)-1]] {
							t.Errorf("reason %s (%s) is missing from Reasons()", n.Name, lit.Value)
						}
					}
				}
			}
		}
	}
	if declared != len(Reasons()) {
		t.Errorf("%d reasons declared, %d listed", declared, len(Reasons()))
	}
}

// TestWireIDs pins the wire strings of reasons that tests elsewhere and
// the JS client's e2e match on: renaming a constant is fine, changing its
// string is not.
func TestWireIDs(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonNotFound: "NOT_FOUND", ReasonAlreadyExists: "ALREADY_EXISTS", ReasonValidationFailed: "VALIDATION_FAILED",
		ReasonConcurrentModification: "CONCURRENT_MODIFICATION", ReasonInternal: "INTERNAL", ReasonQuotaExceeded: "QUOTA_EXCEEDED",
		ReasonUnauthenticated: "UNAUTHENTICATED", ReasonPermissionDenied: "PERMISSION_DENIED",
		ReasonRouteNotFound: "ROUTE_NOT_FOUND", ReasonMethodNotAllowed: "METHOD_NOT_ALLOWED", ReasonBodyTooLarge: "BODY_TOO_LARGE",
		ReasonUnsupportedAPIVersion: "UNSUPPORTED_API_VERSION", ReasonBadInit: "BAD_INIT", ReasonNotReady: "NOT_READY",
		HTTPStatusReason(http.StatusNotImplemented): "HTTP_501", CodeReason(codes.Unavailable): "Unavailable",
	} {
		if string(r) != want {
			t.Errorf("reason %q, want %q", r, want)
		}
	}
}
