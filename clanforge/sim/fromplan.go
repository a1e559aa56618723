package sim

import (
	"github.com/rollout/rollout/plan"
)

// DefaultASID is the account service id of a simulated plan without one.
const DefaultASID = 1

// InventoryFromPlan builds the simulated account of a plan (the --sim rule
// of the plan format): machines that are targets of update or diff steps
// (plan.Machine.Build) are build machines, every other machine is a fleet
// machine that gets install jobs; mirror locations follow labels.region (the
// "default" location when absent); each machine carries the images the plan
// says it carries.
//
// Plan images have no default update URL, so each gets a synthetic one
// ("sim://builds/<image>/"): an update step without url then works against
// the simulator as it would against an image configured with a default.
//
// Cut-over: images keep their profile, the plan's fleets become the
// account's fleets (name and UUID) and each machine names its fleet's id.
// A machine the plan puts in no fleet is left without one here, and New
// then places it (the only fleet when the plan has exactly one, else the
// invented DefaultFleetName). Each fleet starts on the profile New derives
// (see Fleet.Profile) unless the scenario's fleet_profiles says otherwise.
func InventoryFromPlan(p *plan.Plan) Inventory {
	inv := Inventory{ASID: p.ASID}
	if inv.ASID <= 0 {
		inv.ASID = DefaultASID
	}
	if p.Name != "" {
		inv.GameName = p.Name
	}
	for _, im := range p.Images {
		if im == nil {
			continue
		}
		inv.Images = append(inv.Images, Image{Name: im.Name, ID: im.ID, UpdateURL: "sim://builds/" + im.Name + "/", Profile: im.Profile})
	}
	for _, f := range p.Fleets {
		if f != nil {
			inv.Fleets = append(inv.Fleets, Fleet{Name: f.Name, ID: f.ID})
		}
	}
	for _, m := range p.Machines {
		if m == nil {
			continue
		}
		mc := Machine{Name: m.Name, ID: m.ID, Region: m.Labels["region"], Build: m.Build}
		if m.Fleet != nil {
			mc.Fleet = m.Fleet.ID
		}
		for _, im := range m.Images {
			if im != nil {
				mc.Images = append(mc.Images, im.ID)
			}
		}
		inv.Machines = append(inv.Machines, mc)
	}
	return inv
}
