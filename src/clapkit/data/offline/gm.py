"""General MIDI programs and the note grids rendered from GM SoundFonts (NSynth-style labels).

Programs 120-127 are GM's "sound effects" group (helicopter, gunshot, ...), not instruments, so
they are not rendered. Labels are the GM instrument family (GM groups of eight programs, as in
NSynth's instrument-family task), the instrument name, pitch (MIDI number) and velocity.
"""
from __future__ import annotations

from dataclasses import dataclass

GM_PROGRAMS = (
    "acoustic grand piano", "bright acoustic piano", "electric grand piano", "honky-tonk piano",
    "electric piano", "electric piano", "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music box", "vibraphone", "marimba", "xylophone", "tubular bells", "dulcimer",
    "drawbar organ", "percussive organ", "rock organ", "church organ", "reed organ", "accordion",
    "harmonica", "tango accordion",
    "nylon-string guitar", "steel-string guitar", "jazz guitar", "clean electric guitar",
    "muted electric guitar", "overdriven guitar", "distortion guitar", "guitar harmonics",
    "acoustic bass", "fingered electric bass", "picked electric bass", "fretless bass", "slap bass",
    "slap bass", "synth bass", "synth bass",
    "violin", "viola", "cello", "contrabass", "tremolo strings", "pizzicato strings", "orchestral harp", "timpani",
    "string ensemble", "string ensemble", "synth strings", "synth strings", "choir singing aah",
    "voice singing ooh", "synth voice", "orchestra hit",
    "trumpet", "trombone", "tuba", "muted trumpet", "french horn", "brass section", "synth brass", "synth brass",
    "soprano saxophone", "alto saxophone", "tenor saxophone", "baritone saxophone", "oboe", "english horn",
    "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina",
    "square wave synth lead", "sawtooth synth lead", "calliope synth lead", "chiff synth lead",
    "charang synth lead", "voice synth lead", "fifths synth lead", "bass and lead synth",
    "new age synth pad", "warm synth pad", "polysynth pad", "choir synth pad", "bowed synth pad",
    "metallic synth pad", "halo synth pad", "sweep synth pad",
    "rain synth effect", "soundtrack synth effect", "crystal synth effect", "atmosphere synth effect",
    "brightness synth effect", "goblins synth effect", "echoes synth effect", "sci-fi synth effect",
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai",
    "tinkle bell", "agogo", "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum",
    "reverse cymbal",
)
GM_FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
)
# Central pitch of each family, so low/middle/high notes stay in the instruments' ranges.
FAMILY_CENTRE = {"bass": 40, "pipe": 72, "chromatic percussion": 72, "reed": 62}
PITCH_STEPS = {"low": -12, "middle": 0, "high": 12}
VELOCITIES = {"soft": 48, "loud": 112}
LENGTHS = {"short": 0.5, "long": 2.5}


@dataclass(frozen=True)
class GridNote:
    program: int
    pitch: int
    velocity: int
    seconds: float
    height: str
    loudness: str
    length: str

    @property
    def instrument(self) -> str:
        return GM_PROGRAMS[self.program]

    @property
    def family(self) -> str:
        return GM_FAMILIES[self.program // 8]


def note_grid(
    heights: tuple[str, ...] = tuple(PITCH_STEPS),
    loudnesses: tuple[str, ...] = tuple(VELOCITIES),
    lengths: tuple[str, ...] = tuple(LENGTHS),
) -> list[GridNote]:
    """program x pitch x velocity x duration over the 120 melodic GM programs."""
    notes = []
    for program in range(len(GM_PROGRAMS)):
        centre = FAMILY_CENTRE.get(GM_FAMILIES[program // 8], 60)
        for height in heights:
            for loudness in loudnesses:
                for length in lengths:
                    notes.append(GridNote(program, centre + PITCH_STEPS[height], VELOCITIES[loudness],
                                          LENGTHS[length], height, loudness, length))
    return notes


# GM percussion map (keys 35-81 on a drum channel), named as drummers name them.
GM_PERCUSSION = {
    35: "acoustic bass drum", 36: "bass drum", 37: "side stick", 38: "acoustic snare", 39: "hand clap",
    40: "electric snare", 41: "low floor tom", 42: "closed hi-hat", 43: "high floor tom", 44: "pedal hi-hat",
    45: "low tom", 46: "open hi-hat", 47: "low-mid tom", 48: "high-mid tom", 49: "crash cymbal",
    50: "high tom", 51: "ride cymbal", 52: "chinese cymbal", 53: "ride bell", 54: "tambourine",
    55: "splash cymbal", 56: "cowbell", 57: "crash cymbal", 58: "vibraslap", 59: "ride cymbal",
    60: "high bongo", 61: "low bongo", 62: "muted high conga", 63: "open high conga", 64: "low conga",
    65: "high timbale", 66: "low timbale", 67: "high agogo", 68: "low agogo", 69: "cabasa", 70: "maracas",
    71: "short whistle", 72: "long whistle", 73: "short guiro", 74: "long guiro", 75: "claves",
    76: "high wood block", 77: "low wood block", 78: "muted cuica", 79: "open cuica", 80: "muted triangle",
    81: "open triangle",
}
# Drum kits of the GM SoundFonts' percussion bank (preset numbers of the GS standard).
DRUM_KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "TR-808", 32: "jazz", 40: "brush",
             48: "orchestra"}


@dataclass(frozen=True)
class DrumHit:
    kit: int
    key: int
    velocity: int
    loudness: str

    @property
    def instrument(self) -> str:
        return GM_PERCUSSION[self.key]

    @property
    def kit_name(self) -> str:
        return DRUM_KITS[self.kit]


def drum_grid(loudnesses: tuple[str, ...] = tuple(VELOCITIES)) -> list[DrumHit]:
    """kit x percussion key x velocity over the GM drum kits."""
    return [DrumHit(kit, key, VELOCITIES[loudness], loudness)
            for kit in DRUM_KITS for key in GM_PERCUSSION for loudness in loudnesses]
