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

// TestInventoryFromPlanFleets: the cut-over keys of a plan (built directly:
// the loader does not fill them yet) reach the inventory, and New puts a
// machine without a fleet in the plan's only fleet.
func TestInventoryFromPlanFleets(t *testing.T) {
	a := &plan.Image{Name: "game-a", ID: 5530, Profile: 101}
	b := &plan.Image{Name: "game-b", ID: 5531, Profile: 102}
	eu := &plan.Fleet{Name: "prod-eu", ID: "c0a3e2a1-6955-415c-b1d4-af9199833e6a"}
	p := &plan.Plan{
		Images: []*plan.Image{a, b},
		Fleets: []*plan.Fleet{eu},
		Machines: []*plan.Machine{
			{Name: "buildbox-1", ID: 770001, Images: []*plan.Image{a, b}, Build: true},
			{Name: "eu-1", ID: 812345, Labels: map[string]string{"region": "eu"}, Images: []*plan.Image{a, b}, Fleet: eu},
			{Name: "eu-2", ID: 812346, Labels: map[string]string{"region": "eu"}, Images: []*plan.Image{a, b}},
		},
	}
	inv := InventoryFromPlan(p)
	if !reflect.DeepEqual(inv.Fleets, []Fleet{{Name: "prod-eu", ID: eu.ID}}) {
		t.Fatalf("fleets %+v", inv.Fleets)
	}
	if inv.Images[0].Profile != 101 || inv.Images[1].Profile != 102 {
		t.Fatalf("images %+v", inv.Images)
	}
	if inv.Machines[1].Fleet != eu.ID || inv.Machines[2].Fleet != "" || inv.Machines[0].Fleet != "" {
		t.Fatalf("machines %+v", inv.Machines)
	}
	srv, err := New(Config{Inventory: inv, Token: "t", Clock: NewFakeClock(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	fl := srv.Fleets()
	if len(fl) != 1 || fl[0].ID != eu.ID || fl[0].Profile != 101 || !reflect.DeepEqual(fl[0].Machines, []int64{812345, 812346}) {
		t.Fatalf("fleets served %+v", fl)
	}
}
