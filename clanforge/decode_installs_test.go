package clanforge

import (
	"reflect"
	"testing"
)

// TestDecodeInstallsFastTakesOrdinaryAnswers: the fast walk reads the
// documented answers itself (it would be no use if it always handed them
// on), and they mean what the general path makes of them.
func TestDecodeInstallsFastTakesOrdinaryAnswers(t *testing.T) {
	bodies := map[string][]byte{
		"list":       installList(300),
		"sample":     sampleBodies(t)["install_status.json"],
		"empty":      []byte(`{"installs":[]}`),
		"none":       []byte(`{}`),
		"envelope":   []byte(` {"success": true, "installs": [ {"jobid": "7", "machine": "box-1", "restart": true, "mirroring": "1", "extra": {"a": [1, 2]}} ] } `),
		"odd scalar": []byte(`{"installs":[{"jobid":7.0,"jobprogress":"55","jobeta":null,"joberror":"disk \"full\" \u00e9","location":"31"}]}`),
	}
	for name, body := range bodies {
		fast, ok := decodeInstallsFast(body)
		if !ok {
			t.Errorf("%s: the fast walk handed an ordinary answer on", name)
			continue
		}
		general, err := decodeInstallsGeneral(body)
		if err != nil {
			t.Fatalf("%s: general path: %v", name, err)
		}
		if !reflect.DeepEqual(fast, general) {
			t.Errorf("%s: fast %+v\ngeneral %+v", name, fast, general)
		}
	}
}

// TestDecodeInstallsFastLeaves: what the fast walk cannot read exactly as
// encoding/json would, it leaves to the general path, errors included.
func TestDecodeInstallsFastLeaves(t *testing.T) {
	for _, body := range []string{
		`{"installs":{"0":{"jobid":1}}}`,           // a PHP list
		`{"Installs":[{"jobid":1}]}`,               // encoding/json matches keys in any case
		`{"installs":[{"JobID":1}]}`,               // in entries too
		`{"installs":[{"jobid":[1]}]}`,             // a list where a number belongs
		`{"installs":[{"jobid":01}]}`,              // not JSON
		`{"installs":[{"jobid":1},]}`,              // a trailing comma
		`{"installs":[{"jobid":1,}]}`,              // inside an entry
		`{"installs":[{"jobid":1}]`,                // cut off
		`{"installs":[{"jobid":1}]} x`,             // trailing bytes
		`{"installs":[{"jobid":"\x"}]}`,            // a bad escape
		`{"installs":[{"jobid":{}}]}`,              // an object where a number belongs
		`{"installs":[{"restart":"maybe"}]}`,       // a value the field refuses
		`{"installs":[{"jobid":1}],"installs":[]}`, // the second list wins
		`{"installs":null}`,
		`{"installs":[{"jobid":1, "x": {"a":}}]}`, // a bad value of an unknown key
		`{"installs":[{"jobid":tru}]}`,
	} {
		if out, ok := decodeInstallsFast([]byte(body)); ok {
			t.Errorf("%s: the fast walk read it: %+v", body, out)
		}
	}
}

// FuzzDecodeInstallsFast: whenever the fast walk reads an answer, the
// general path reads it too, to the same result.
func FuzzDecodeInstallsFast(f *testing.F) {
	f.Add(installList(3))
	for _, b := range sampleBodies(f) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"installs":[{"jobid":"7","machine":"box","location":"31","restart":true,"mirroring":"1","jobstart":"12"}]}`,
		`{"installs":[{"jobid":1e3,"jobeta":-0.5,"joberror":"\ud800"}]}`,
		`{"installs":[],"installs":[]}`,
		`{"x":[{"installs":[]}],"installs":[{"jobid":2}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeInstallsFast(body)
		if !ok {
			return
		}
		general, err := decodeInstallsGeneral(body)
		if err != nil {
			t.Fatalf("the fast walk read %q, the general path refused it: %v", body, err)
		}
		if !reflect.DeepEqual(fast, general) {
			t.Fatalf("%q:\nfast    %+v\ngeneral %+v", body, fast, general)
		}
	})
}
