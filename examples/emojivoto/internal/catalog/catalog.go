// Package catalog is the fixed list of emoji emojivoto offers (catalog_gen.go, from hack/gen-emojivoto.py): the
// original emojivoto's, with its shortcodes (:joy:, :doughnut:) and vote methods (VoteJoy, VoteDoughnut).
package catalog

// Emoji is one votable emoji.
type Emoji struct {
	Unicode   string
	Shortcode string
	// VoteRPC is the VotingService method that counts a vote for it.
	VoteRPC string
}

var byShortcode = func() map[string]Emoji {
	m := make(map[string]Emoji, len(All))
	for _, e := range All {
		m[e.Shortcode] = e
	}
	return m
}()

var byRPC = func() map[string]Emoji {
	m := make(map[string]Emoji, len(All))
	for _, e := range All {
		m[e.VoteRPC] = e
	}
	return m
}()

// Find looks an emoji up by shortcode, or by one of its aliases (:beer_mug: for :beer:); the Emoji has its
// primary shortcode.
func Find(shortcode string) (Emoji, bool) {
	if primary, ok := aliases[shortcode]; ok {
		shortcode = primary
	}
	e, ok := byShortcode[shortcode]
	return e, ok
}

// ByRPC looks an emoji up by its vote method name.
func ByRPC(method string) (Emoji, bool) {
	e, ok := byRPC[method]
	return e, ok
}
