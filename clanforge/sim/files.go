package sim

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
)

// fileInfo is one file of an image as the simulator models it: its size for
// the diff maps and a content hash to tell modified files apart.
type fileInfo struct {
	Size int64
	Hash uint64
}

// fileSet maps a path to its file.
type fileSet map[string]fileInfo

func (fs fileSet) clone() fileSet {
	out := make(fileSet, len(fs))
	for k, v := range fs {
		out[k] = v
	}
	return out
}

func (fs fileSet) paths() []string {
	p := make([]string, 0, len(fs))
	for k := range fs {
		p = append(p, k)
	}
	sort.Strings(p)
	return p
}

// hash64 hashes its parts with separators so that ("ab","c") != ("a","bc").
func hash64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// mainExecutable is never removed by a derived build, so that gates written
// against the docs' example ("GameServer.x86_64" not removed) pass by default.
const mainExecutable = "GameServer.x86_64"

// baseFiles is the file set of an image's initial version, derived from the
// image id so that it is the same in every run.
func baseFiles(imageID int64) fileSet {
	id := strconv.FormatInt(imageID, 10)
	fs := fileSet{}
	for _, p := range []string{
		mainExecutable,
		"GameServer_Data/globalgamemanagers",
		"Data/level1.pak",
		"Data/level2.pak",
		"Data/level3.pak",
		"config/server.cfg",
	} {
		h := hash64("base", id, p)
		fs[p] = fileInfo{Size: 1024 + int64(h%(64<<20)), Hash: h}
	}
	return fs
}

// changeSet is what a build does to the files of the image's latest version.
type changeSet struct {
	Added    []string
	Modified []string
	Removed  []string
}

// derivedChanges picks a few changes from a hash of the image, url and desc:
// one to three modified files, zero to two added files, and sometimes one
// removed file (never the main executable).
func derivedChanges(latest fileSet, imageID int64, url, desc string) changeSet {
	h := hash64("build", strconv.FormatInt(imageID, 10), url, desc)
	paths := latest.paths()
	var cs changeSet
	picked := map[string]bool{}
	nmod := 1 + int(h%3)
	for i := 0; i < nmod && len(paths) > 0; i++ {
		p := paths[int((h>>(8*uint(i+1)))%uint64(len(paths)))]
		if !picked[p] {
			picked[p] = true
			cs.Modified = append(cs.Modified, p)
		}
	}
	nadd := int((h >> 32) % 3)
	for i := 0; i < nadd; i++ {
		cs.Added = append(cs.Added, fmt.Sprintf("Data/content-%08x.pak", uint32(hash64(strconv.FormatUint(h, 16), strconv.Itoa(i)))))
	}
	if (h>>40)%2 == 1 && len(paths) > 3 {
		for i := range paths {
			p := paths[(int(h>>44)+i)%len(paths)]
			if p != mainExecutable && !picked[p] {
				cs.Removed = append(cs.Removed, p)
				break
			}
		}
	}
	return cs
}

// apply returns the files of latest after the changes; the content of a
// changed file depends on the build so that two different builds differ.
func (cs changeSet) apply(latest fileSet, buildKey string) fileSet {
	out := latest.clone()
	for _, p := range cs.Removed {
		delete(out, p)
	}
	for _, p := range append(append([]string{}, cs.Modified...), cs.Added...) {
		h := hash64("content", buildKey, p, strconv.FormatUint(latest[p].Hash, 16))
		out[p] = fileInfo{Size: 1024 + int64(h%(64<<20)), Hash: h}
	}
	return out
}

// diffResult is a computed difference analysis.
type diffResult struct {
	Added    fileSet
	Modified fileSet
	Removed  fileSet
}

func (d diffResult) changed() int { return len(d.Added) + len(d.Modified) + len(d.Removed) }

// computeDiff compares the machine's files with the latest version's.
func computeDiff(latest, machine fileSet) diffResult {
	r := diffResult{Added: fileSet{}, Modified: fileSet{}, Removed: fileSet{}}
	for p, f := range machine {
		old, ok := latest[p]
		switch {
		case !ok:
			r.Added[p] = f
		case old.Hash != f.Hash:
			r.Modified[p] = f
		}
	}
	for p, f := range latest {
		if _, ok := machine[p]; !ok {
			r.Removed[p] = f
		}
	}
	return r
}
