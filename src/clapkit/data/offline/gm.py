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
