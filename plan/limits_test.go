package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes f allocates. Memory, unlike time, does not
// depend on how busy the machine is, so bounds on it make steady tests.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// billionLaughs nests levels lists of ten aliases to the level below.
func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString("version: 1\nvars:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	return b.String()
}

// blockStairs nests n block mappings, one more space each.
func blockStairs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	return b.String()
}

// manyKeys is one block mapping of n distinct keys.
func manyKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "k%d: v\n", i)
	}
	return b.String()
}

// TestHostilePlans: inputs that once took the YAML parser minutes and
// gigabytes are refused before it runs, in little memory, with a
// positioned error that says what is wrong.
func TestHostilePlans(t *testing.T) {
	cases := []struct {
		name string
		src  string
		pos  string // "line:col" prefix; "" for no position
		frag string
	}{
		{"nested flow brackets", "steps: " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n", "1:71", "nest more than 64 deep"},
		{"nested flow mappings", "steps: " + strings.Repeat("{a: ", 20_000) + "1" + strings.Repeat("}", 20_000) + "\n", "1:", "nest more than 64 deep"},
		{"unclosed brackets", "steps: " + strings.Repeat("[", 20_000) + "\n", "1:71", "nest more than 64 deep"},
		{"block indentation", blockStairs(2_000), "65:65", "nest more than 64 deep"},
		{"dashes", "steps:\n" + strings.Repeat("- ", 5_000) + "x\n", "2:", "nest more than 64 deep"},
		{"billion laughs", billionLaughs(10), "8:", "aliases expand the plan by more than 1000000 values"},
		{"alias in its own anchor", "version: 1\nvars: {a: &a [*a, *a]}\n", "2:15", "alias *a is inside the value of its own anchor &a"},
		{"anchor chain", "version: 1\nvars:\n" + func() string {
			var b strings.Builder
			for i := 0; i < 300; i++ {
				fmt.Fprintf(&b, "  v%d: &a%d [*a%d, *a%d]\n", i, i, i+1, i+1)
			}
			return b.String() + "  end: &a300 x\n"
		}(), "130:15", "anchors and aliases nest more than 256 deep"},
		{"too many tokens", "steps: [" + strings.Repeat("1,", 1_100_000) + "]\n", "1:1000006", "more than 1000000 YAML tokens"},
		{"huge block mapping", manyKeys(5_000), "4001:1", "block mappings hold too many keys"},
		{"too large", "# " + strings.Repeat("x", MaxPlanBytes) + "\n", "", "the plan file is 8388611 bytes; a plan may be at most 8388608 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var errs Errors
			mem := allocated(func() { errs = parseErrs(t, c.src, Options{}) })
			// Without the checks these take from hundreds of megabytes
			// to gigabytes.
			if limit := uint64(64<<20) + 8*uint64(len(c.src)); mem > limit {
				t.Errorf("refusing it allocated %d MB, want at most %d MB", mem>>20, limit>>20)
			}
			if len(errs) != 1 {
				t.Fatalf("want one error, got %d:\n%.2000s", len(errs), errs.Error())
			}
			e := errs[0]
			pos := fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Col)
			if c.pos == "" && e.Pos.Line != 0 || c.pos != "" && !strings.HasPrefix(pos, c.pos) || !strings.Contains(e.Msg, c.frag) {
				t.Errorf("got %s: %s\nwant %s: ...%s...", pos, e.Msg, c.pos, c.frag)
			}
			if out := e.Error(); len(out) > 2000 {
				t.Errorf("the error renders as %d bytes", len(out))
			}
		})
	}
}

// TestLimitsLeaveRoom: a 10,000-machine plan, in either style, is far
// inside every limit.
func TestLimitsLeaveRoom(t *testing.T) {
	var verbose strings.Builder
	verbose.WriteString("machines:\n")
	for i := 0; i < 10_000; i++ {
		fmt.Fprintf(&verbose, "  - name: eu-west-1-game-%05d\n    id: %d\n    labels:\n      role: fleet\n      region: eu-west-1\n      rack: r%d\n    images: [img]\n", i, 100000+i, i%40)
	}
	for name, src := range map[string][]byte{"one line each": fleet(10_000, `["10%", "100%"]`), "block style": []byte(verbose.String())} {
		n, _, _, _ := countTokens(src, maxTokens)
		if len(src) > MaxPlanBytes/4 || n > maxTokens/4 {
			t.Errorf("%s: %d bytes, %d tokens: too close to the limits (%d, %d)", name, len(src), n, MaxPlanBytes, maxTokens)
		}
	}
	if _, err := Parse("big.yaml", fleet(10_000, `["10%", "100%"]`), Options{}); err != nil {
		t.Fatal(err)
	}
	// Anchors and aliases that repeat parts of a plan still work.
	src := edit(t, "  - {name: f, id: 2, labels: {role: fleet}}\n", "  - {name: f, id: 2, labels: &fl {role: fleet}}\n  - {name: g, id: 3, labels: *fl}\n")
	if p, err := Parse("t.yaml", []byte(src), Options{}); err != nil || len(p.Machines) != 3 || p.Machines[2].Labels["role"] != "fleet" {
		t.Fatalf("aliased labels: %v", err)
	}
}

// TestLoadRefusesLargeFileUnread: Load refuses an oversized file from its
// size, without reading it into memory.
func TestLoadRefusesLargeFileUnread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: 54 MB on paper, nothing on disk.
	if err := f.Truncate(54 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var lerr error
	mem := allocated(func() { _, lerr = Load(path, Options{}) })
	if mem > 1<<20 {
		t.Errorf("Load allocated %d MB for a file it must refuse unread", mem>>20)
	}
	var errs Errors
	if !asErrors(lerr, &errs) || len(errs) != 1 || errs[0].Pos.File != path || errs[0].Msg != "the plan file is 54.0 MiB; a plan may be at most 8.0 MiB (a 10,000-machine plan is under 2 MiB)" {
		t.Fatalf("got %v", lerr)
	}
}

// TestErrorCountIsBounded: a plan with thousands of errors on one long line
// reports the first maxErrors, counts the rest, and quotes only part of
// the line under each.
func TestErrorCountIsBounded(t *testing.T) {
	src := "steps: [" + strings.Repeat("1, ", 5_000) + "1]\n"
	errs := parseErrs(t, src, Options{})
	if len(errs) != maxErrors+1 {
		t.Fatalf("%d errors, want %d and a count of the rest", len(errs), maxErrors+1)
	}
	last := errs[len(errs)-1]
	if !strings.HasSuffix(last.Msg, "more errors not shown: fix these first") || last.Pos.Line != 0 {
		t.Errorf("last error: %v", last)
	}
	for _, l := range strings.Split(errs.Error(), "\n") {
		if len([]rune(l)) > shownLine+20 {
			t.Fatalf("rendered line of %d characters", len([]rune(l)))
		}
	}
}

func TestWindow(t *testing.T) {
	long := strings.Repeat("a", 100) + "X" + strings.Repeat("b", 300)
	for _, c := range []struct {
		line  string
		caret int
		want  string // the shown line with the caret's character bracketed
	}{
		{"short X line", 6, "short [X] line"},
		{long, 100, "…" + strings.Repeat("a", 53) + "[X]" + strings.Repeat("b", 106) + "…"},
		{long, 3, strings.Repeat("a", 3) + "[a]" + strings.Repeat("a", 96) + "X" + strings.Repeat("b", 59) + "…"},
		{long, 400, "…" + strings.Repeat("b", 159) + "[b]"},
	} {
		shown, caret := window(c.line, c.caret)
		r := []rune(shown)
		got := string(r[:caret]) + "[" + string(r[caret]) + "]" + string(r[caret+1:])
		if got != c.want {
			t.Errorf("window(%.20q…, %d) = %q, want %q", c.line, c.caret, got, c.want)
		}
	}
}

func asErrors(err error, errs *Errors) bool { return errors.As(err, errs) }
