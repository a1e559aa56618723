package redact

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestCopyErrors: an error inside a copied value says the function's text
// and still unwraps to the original, so that callers can branch on it.
func TestCopyErrors(t *testing.T) {
	type result struct {
		Err  error
		Errs []error
	}
	base := errors.New("root")
	in := result{Err: fmt.Errorf("wrapped \x1b[2J: %w", base), Errs: []error{nil, base}}
	out := Copy(in, Terminal)
	if strings.ContainsRune(out.Err.Error(), 0x1b) || !strings.Contains(out.Err.Error(), `\x1b`) {
		t.Fatalf("error text not escaped: %q", out.Err.Error())
	}
	if !errors.Is(out.Err, base) || !errors.Is(out.Errs[1], base) || out.Errs[0] != nil {
		t.Fatalf("chain lost: %v", out)
	}
}
