#!/usr/bin/env python3
"""Generates the emojivoto catalogue: the VotingService proto (one Vote RPC per emoji, so every emoji is a route of
its own in per-route metrics) and the Go table the services share. The emoji, their shortcodes, their order and the
RPC names are the original emojivoto's (github.com/BuoyantIO/emojivoto, emoji-svc's top100Emoji and Voting.proto),
so that commands from Linkerd's tutorials (/api/vote?choice=:joy:, VoteDoughnut) work against ours. Each emoji of
one code point also answers to a shortcode made from its Unicode name, as an earlier sinew catalogue named them
(:face_with_tears_of_joy: for :joy:, :beer_mug: for :beer:). Run from the repository root; `make gen` then compiles
the proto."""
import subprocess
import unicodedata

ZWJ, VS16, MALE, FEMALE = "\u200d", "\ufe0f", "\u2642", "\u2640"

def man(base):
    return base + ZWJ + MALE + VS16

def woman(base):
    return base + ZWJ + FEMALE + VS16

# (shortcode without colons, emoji), in the original's order
EMOJI = [
    ("joy", "\U0001F602"), ("sunglasses", "\U0001F60E"), ("doughnut", "\U0001F369"),
    ("stuck_out_tongue_winking_eye", "\U0001F61C"), ("money_mouth_face", "\U0001F911"), ("flushed", "\U0001F633"),
    ("mask", "\U0001F637"), ("nerd_face", "\U0001F913"), ("ghost", "\U0001F47B"),
    ("skull_and_crossbones", "\u2620" + VS16), ("heart_eyes_cat", "\U0001F63B"), ("hear_no_evil", "\U0001F649"),
    ("see_no_evil", "\U0001F648"), ("speak_no_evil", "\U0001F64A"), ("boy", "\U0001F466"), ("girl", "\U0001F467"),
    ("man", "\U0001F468"), ("woman", "\U0001F469"), ("older_man", "\U0001F474"), ("policeman", man("\U0001F46E")),
    ("guardsman", man("\U0001F482")), ("construction_worker_man", man("\U0001F477")), ("prince", "\U0001F934"),
    ("princess", "\U0001F478"), ("man_in_tuxedo", "\U0001F935"), ("bride_with_veil", "\U0001F470"),
    ("mrs_claus", "\U0001F936"), ("santa", "\U0001F385"), ("turkey", "\U0001F983"), ("rabbit", "\U0001F430"),
    ("no_good_woman", woman("\U0001F645")), ("ok_woman", woman("\U0001F646")),
    ("raising_hand_woman", woman("\U0001F64B")), ("bowing_man", man("\U0001F647")),
    ("man_facepalming", man("\U0001F926")), ("woman_shrugging", woman("\U0001F937")),
    ("massage_woman", woman("\U0001F486")), ("walking_man", man("\U0001F6B6")), ("running_man", man("\U0001F3C3")),
    ("dancer", "\U0001F483"), ("man_dancing", "\U0001F57A"), ("dancing_women", woman("\U0001F46F")),
    ("rainbow", "\U0001F308"), ("skier", "\u26F7" + VS16), ("golfing_man", man("\U0001F3CC" + VS16)),
    ("surfing_man", man("\U0001F3C4")), ("basketball_man", man("\u26F9" + VS16)), ("biking_man", man("\U0001F6B4")),
    ("point_up_2", "\U0001F446"), ("vulcan_salute", "\U0001F596"), ("metal", "\U0001F918"),
    ("call_me_hand", "\U0001F919"), ("thumbsup", "\U0001F44D"), ("wave", "\U0001F44B"), ("clap", "\U0001F44F"),
    ("raised_hands", "\U0001F64C"), ("pray", "\U0001F64F"), ("dog", "\U0001F436"), ("cat2", "\U0001F408"),
    ("pig", "\U0001F437"), ("hatching_chick", "\U0001F423"), ("snail", "\U0001F40C"), ("bacon", "\U0001F953"),
    ("pizza", "\U0001F355"), ("taco", "\U0001F32E"), ("burrito", "\U0001F32F"), ("ramen", "\U0001F35C"),
    ("champagne", "\U0001F37E"), ("tropical_drink", "\U0001F379"), ("beer", "\U0001F37A"),
    ("tumbler_glass", "\U0001F943"), ("world_map", "\U0001F5FA" + VS16), ("beach_umbrella", "\U0001F3D6" + VS16),
    ("mountain_snow", "\U0001F3D4" + VS16), ("camping", "\U0001F3D5" + VS16), ("steam_locomotive", "\U0001F682"),
    ("flight_departure", "\U0001F6EB"), ("rocket", "\U0001F680"), ("star2", "\U0001F31F"),
    ("sun_behind_small_cloud", "\U0001F324" + VS16), ("cloud_with_rain", "\U0001F327" + VS16), ("fire", "\U0001F525"),
    ("jack_o_lantern", "\U0001F383"), ("balloon", "\U0001F388"), ("tada", "\U0001F389"), ("trophy", "\U0001F3C6"),
    ("iphone", "\U0001F4F1"), ("pager", "\U0001F4DF"), ("fax", "\U0001F4E0"), ("bulb", "\U0001F4A1"),
    ("money_with_wings", "\U0001F4B8"), ("crystal_ball", "\U0001F52E"), ("underage", "\U0001F51E"),
    ("interrobang", "\u2049" + VS16), ("100", "\U0001F4AF"), ("checkered_flag", "\U0001F3C1"),
    ("crossed_swords", "\u2694" + VS16), ("floppy_disk", "\U0001F4BE"), ("poop", "\U0001F4A9"),
]

def unicode_name_shortcode(u):
    """The shortcode the earlier catalogue made from the Unicode name, for an emoji of one code point."""
    cps = u.replace(VS16, "")
    if len(cps) != 1:
        return None
    return ":" + "_".join(unicodedata.name(cps).lower().replace("-", " ").split()) + ":"

def go_string(u):
    out = ""
    for ch in u:
        out += "\\u%04x" % ord(ch) if ch in (ZWJ, VS16, MALE, FEMALE) else ch
    return '"' + out + '"'

def entries():
    seen = set()
    for name, u in EMOJI:
        short = ":" + name + ":"
        rpc = "Vote" + "".join(w.capitalize() for w in name.split("_"))
        assert short not in seen and rpc not in seen, short
        seen.update((short, rpc))
        yield u, short, rpc

def main():
    es = list(entries())
    assert len(es) == 99 and any(s == ":doughnut:" for _, s, _ in es)
    aliases = {}
    for u, s, _ in es:
        a = unicode_name_shortcode(u)
        if a and a != s:
            assert a not in aliases and all(a != t for _, t, _ in es), a
            aliases[a] = s
    with open("examples/emojivoto/proto/emojivoto/v1/voting.proto", "w") as f:
        f.write('// Generated by hack/gen-emojivoto.py. DO NOT EDIT.\n')
        f.write('syntax = "proto3";\n\npackage emojivoto.v1;\n\n')
        f.write('option go_package = "github.com/sinewmesh/sinew/examples/emojivoto/gen/emojivotov1;emojivotov1";\n\n')
        f.write('message VoteRequest {}\nmessage VoteResponse {}\nmessage ResultsRequest {}\n')
        f.write('message VotingResult {\n  string shortcode = 1;\n  int32 votes = 2;\n}\n')
        f.write('message ResultsResponse {\n  repeated VotingResult results = 1;\n}\n\n')
        f.write('// VotingService counts votes. Each emoji has its own RPC so each shows up as its own route.\n')
        f.write('service VotingService {\n  rpc Results(ResultsRequest) returns (ResultsResponse);\n')
        for _, s, r in es:
            f.write(f'  // {s}\n  rpc {r}(VoteRequest) returns (VoteResponse);\n')
        f.write('}\n')
    with open("examples/emojivoto/internal/catalog/catalog_gen.go", "w") as f:
        f.write('// Code generated by hack/gen-emojivoto.py. DO NOT EDIT.\n\npackage catalog\n\n')
        f.write('// All is the catalogue, in display order; VoteRPC is the VotingService method for the emoji.\n')
        f.write('var All = []Emoji{\n')
        for u, s, r in es:
            f.write(f'\t{{Unicode: {go_string(u)}, Shortcode: "{s}", VoteRPC: "{r}"}},\n')
        f.write('}\n\n')
        f.write('// aliases are shortcodes made from the emoji\'s Unicode names, as an earlier catalogue named them; Find\n')
        f.write('// accepts them too.\n')
        f.write('var aliases = map[string]string{\n')
        for a in sorted(aliases):
            f.write(f'\t"{a}": "{aliases[a]}",\n')
        f.write('}\n')
    subprocess.run(["gofmt", "-w", "examples/emojivoto/internal/catalog/catalog_gen.go"], check=True)

main()
