package sim

import (
	"reflect"
	"testing"

	"github.com/rollout/rollout/plan"
)

func TestInventoryFromPlan(t *testing.T) {
	a := &plan.Image{Name: "game-a", ID: 5530}
	b := &plan.Image{Name: "game-b", ID: 5531}
	p := &plan.Plan{
		Name:   "demo",
		Images: []*plan.Image{a, b},
		Machines: []*plan.Machine{
			{Name: "buildbox-1", ID: 770001, Labels: map[string]string{"role": "build"}, Images: []*plan.Image{a, b}, Build: true},
			{Name: "eu-1", ID: 812345, Labels: map[string]string{"region": "eu"}, Images: []*plan.Image{a, b}},
			{Name: "lone", ID: 812999, Images: []*plan.Image{b}},
		},
	}
	inv := InventoryFromPlan(p)
	want := Inventory{
		ASID:     DefaultASID,
		GameName: "demo",
		Images: []Image{
			{Name: "game-a", ID: 5530, UpdateURL: "sim://builds/game-a/"},
			{Name: "game-b", ID: 5531, UpdateURL: "sim://builds/game-b/"},
		},
		Machines: []Machine{
			{Name: "buildbox-1", ID: 770001, Images: []int64{5530, 5531}, Build: true},
			{Name: "eu-1", ID: 812345, Region: "eu", Images: []int64{5530, 5531}},
			{Name: "lone", ID: 812999, Images: []int64{5531}},
		},
	}
	if !reflect.DeepEqual(inv, want) {
		t.Fatalf("inventory\n%+v\nwant\n%+v", inv, want)
	}
	p.ASID = 77
	if got := InventoryFromPlan(p).ASID; got != 77 {
		t.Errorf("ASID %d", got)
	}

	// The inventory serves: build machines get no installs, fleet machines
	// one each, one mirror per location ("eu" and the default one).
	srv, err := New(Config{Inventory: inv, AccessKey: "a", SecretKey: "b", Clock: NewFakeClock(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, l := range srv.locations {
		names[l.name] = true
	}
	if !reflect.DeepEqual(names, map[string]bool{"eu": true, DefaultRegion: true}) {
		t.Fatalf("locations %v", names)
	}
	if got := len(srv.imageByID[5531].fleet); got != 2 {
		t.Errorf("game-b fleet machines: %d", got)
	}
}
