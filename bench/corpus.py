"""Synthetic but realistic memory texts, queries and chat messages for the benchmarks.

Sentences come from templates with slots filled from word lists, with a seeded RNG, so every run
builds the same data set. The vocabulary is wide on purpose (hundreds of names, places, foods,
jobs, ...): BM25 must see many distinct terms with realistic document frequencies, not a handful
of words that match every memory.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


WORDS: dict[str, tuple[str, ...]] = {
    "name": _words("""
        Anna Ben Chloe Dmitri Elena Farid Grace Hiro Ines Jonas Kira Luca Maya Nadia Omar Priya Quentin
        Rosa Samir Tara Umar Vera Wes Ximena Yusuf Zoe Adele Bruno Carmen Diego Esther Felix Greta Hugo
        Ingrid Jamal Keiko Leon Mira Nils Olga Pablo Rahel Sven Tomas Ulla Victor Wanda Yara Zeno Amira
        Boris Celia Dario Elif Fatima Gustav Hana Igor Julia Kofi Lena Marco Noor Oscar Petra Ravi Sofia
        Theo Uma Valentin Wiebke Xavier Yosef Zainab"""),
    "relation": _words("""
        sister brother mother father aunt uncle cousin grandmother grandfather niece nephew
        daughter son wife husband partner flatmate neighbour manager colleague mentor"""),
    "city": _words("""
        Lisbon Porto Madrid Seville Barcelona Valencia Marseille Lyon Paris Brussels Antwerp Utrecht
        Rotterdam Hamburg Berlin Leipzig Munich Vienna Salzburg Prague Brno Krakow Warsaw Gdansk Vilnius
        Riga Tallinn Helsinki Stockholm Gothenburg Oslo Bergen Copenhagen Aarhus Dublin Galway Edinburgh
        Glasgow Manchester Leeds Bristol Cardiff London Zurich Geneva Basel Milan Turin Bologna Florence
        Naples Palermo Athens Thessaloniki Istanbul Izmir Sofia Bucharest Budapest Ljubljana Zagreb
        Split Sarajevo Belgrade Tbilisi Yerevan Cairo Marrakesh Tunis Nairobi Kigali Accra Lagos Dakar
        Toronto Montreal Vancouver Boston Chicago Denver Austin Seattle Portland Oaxaca Lima Bogota
        Santiago Montevideo Osaka Kyoto Sapporo Busan Taipei Hanoi Bangkok Penang Jakarta Melbourne
        Adelaide Auckland Wellington"""),
    "food": _words("""
        peanuts walnuts almonds hazelnuts shrimp oysters mussels salmon tuna sardines eggs gluten
        lactose soy sesame strawberries kiwi mango avocado aubergine courgette spinach kale broccoli
        cauliflower mushrooms truffles olives capers anchovies chorizo halloumi feta ricotta tofu tempeh
        seitan lentils chickpeas quinoa couscous polenta risotto gnocchi ramen udon soba dumplings
        tacos burritos falafel hummus shakshuka paella lasagne moussaka pierogi borscht goulash curry
        dal biryani pho laksa kimchi sushi tempura bibimbap croissants bagels pancakes waffles brownies
        cheesecake tiramisu baklava churros gelato sorbet"""),
    "cuisine": _words("""
        Italian Japanese Korean Thai Vietnamese Indian Ethiopian Lebanese Turkish Greek Mexican
        Peruvian Georgian Moroccan Spanish Portuguese French Polish Hungarian Nepalese Malaysian
        Indonesian Sichuan Cantonese Brazilian"""),
    "drink": _words("""
        espresso cappuccino matcha chai rooibos oolong kombucha lemonade cider lager stout porter
        riesling malbec prosecco sake mezcal gin whisky horchata kefir oat-milk smoothies
        decaf"""),
    "hobby": _words("""
        hiking bouldering climbing cycling gravel-riding trail-running swimming kayaking sailing
        surfing skiing snowboarding birdwatching gardening beekeeping woodworking pottery knitting
        sewing painting sketching calligraphy photography baking fermenting brewing chess sudoku
        crosswords origami journaling geocaching camping fishing foraging volunteering dancing salsa
        tango yoga pilates meditation astronomy"""),
    "instrument": _words("""
        piano guitar bass violin cello viola flute clarinet saxophone trumpet trombone drums
        ukulele accordion harp banjo mandolin"""),
    "sport": _words("""
        football basketball volleyball handball tennis badminton squash padel table-tennis rugby
        cricket baseball hockey golf fencing rowing judo karate boxing"""),
    "pet": _words("dog cat rabbit parrot tortoise hamster ferret goldfish gecko canary"),
    "petname": _words("""
        Biscuit Pepper Mochi Luna Milo Olive Pixel Noodle Ziggy Waffles Clover Juniper Pumpkin
        Socks Ginger Pickles Marble Tofu Bean Nimbus Comet Maple Pretzel Sprout"""),
    "job": _words("""
        nurse teacher architect electrician plumber accountant lawyer paramedic pharmacist dentist
        journalist translator librarian chef baker barista carpenter welder pilot firefighter
        veterinarian physiotherapist radiologist surveyor geologist biologist chemist statistician
        actuary economist designer illustrator animator photographer editor copywriter developer
        sysadmin tester recruiter consultant historian curator archivist midwife optician
        locksmith"""),
    "company": _words("""
        Northwind Brightline Tidewater Larkspur Ironbridge Bluefin Quarry Halcyon Meridian Cobalt
        Redwood Foxglove Harbourlight Stonefield Aurora Keystone Silverleaf Lumen Granite Kestrel
        Orchard Beacon Pinecrest Windmill Copperpot Saltmarsh Highgate Ravenwood Moonrise
        Sunhollow"""),
    "language": _words("""
        English Spanish Portuguese French German Dutch Italian Polish Czech Swedish Norwegian
        Finnish Greek Turkish Arabic Hebrew Hindi Bengali Japanese Korean Mandarin Swahili"""),
    "skill": _words("""
        Python SQL Rust Go TypeScript Kotlin Swift statistics accounting negotiation public-speaking
        sign-language bookkeeping carpentry first-aid welding drawing copyediting UX-research
        data-visualisation machine-learning cloud-networking project-management"""),
    "tool": _words("""
        Excel Jira Figma Notion Slack Trello Asana Salesforce SAP Tableau PowerBI Blender AutoCAD
        Photoshop Lightroom Premiere Git Docker Kubernetes Terraform Postgres Grafana Airtable
        Zendesk Miro"""),
    "genre": _words("""
        crime fantasy sci-fi historical romance horror poetry biography travel philosophy
        cookbook thriller memoir"""),
    "event": _words("""
        wedding graduation marathon half-marathon triathlon conference hackathon concert festival
        retirement-party baby-shower housewarming reunion exhibition"""),
    "colour": _words("red blue green black white silver grey yellow orange teal burgundy"),
    "car": _words("""
        hatchback estate convertible campervan scooter e-bike cargo-bike pickup minivan
        motorbike"""),
    "item": _words("""
        wallet keys phone umbrella passport headphones laptop glasses scarf notebook charger
        bike-lock"""),
    "place": _words("""
        gym library office station airport bakery market cinema park beach museum clinic
        pharmacy stadium"""),
    "weekday": _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday"),
    "month": _words("January February March April May June July August September October November December"),
    "season": _words("spring summer autumn winter"),
    "hour": _words("7am 8am 9am 10am noon 2pm 4pm 6pm 8pm 10pm"),
    "year": tuple(str(y) for y in range(2005, 2026)),
    "day": tuple(str(d) for d in range(1, 29)),
    "number": tuple(str(n) for n in (3, 5, 8, 10, 12, 15, 21, 42)),
    "age": tuple(str(n) for n in range(1, 16)),
}

# Slots whose values are named entities (the extractor would tag them), not topics.
ENTITY_SLOTS = frozenset({"name", "city", "company", "petname", "tool", "language"})


@dataclass(frozen=True)
class Template:
    text: str
    type: str  # semantic, episodic or procedural
    topic: str


TEMPLATES: tuple[Template, ...] = (
    Template("Is allergic to {food} and avoids anything cooked with it.", "semantic", "health"),
    Template("Prefers {cuisine} food, especially {food} with {food2}.", "semantic", "food"),
    Template("Drinks {drink} every morning and switches to {drink2} after {hour}.", "semantic", "food"),
    Template("Has been vegetarian since {year} but still misses {food}.", "semantic", "food"),
    Template("Cannot stand {food}, even in {cuisine} dishes.", "semantic", "food"),
    Template("Grew up in {city} and moved to {city2} for a job at {company}.", "semantic", "places"),
    Template("Works as a {job} at {company} in {city}.", "semantic", "work"),
    Template("Is learning {skill} to move from {job} work into {job2} work.", "semantic", "work"),
    Template("Has a weekly call with {name} every {weekday} at {hour}.", "semantic", "work"),
    Template("Uses {tool} every day at work and finds {tool2} confusing.", "semantic", "work"),
    Template("Their {relation} {name} lives in {city} and works as a {job}.", "semantic", "family"),
    Template("Their {relation} {name} has a birthday on {month} {day}.", "semantic", "family"),
    Template("Has a {pet} called {petname} who is {age} years old.", "semantic", "pets"),
    Template("Plays {instrument} in an amateur band on {weekday} evenings.", "semantic", "hobbies"),
    Template("Goes {hobby} most weekends near {city}.", "semantic", "hobbies"),
    Template("Watches {sport} on TV and plays {sport2} with {name}.", "semantic", "sports"),
    Template("Is reading a {genre} novel that {name} recommended.", "semantic", "books"),
    Template("Speaks {language} at home and is learning {language2}.", "semantic", "languages"),
    Template("Runs {number} kilometres three times a week to train for a {event}.", "semantic", "health"),
    Template("Sleeps badly after drinking {drink} later than {hour}.", "semantic", "health"),
    Template("Wants {colour} as the main colour for the new flat in {city}.", "semantic", "home"),
    Template("Visited {city} in {month} {year} with {name} and loved the {food}.", "episodic", "travel"),
    Template("Is planning a trip to {city} next {season} to see {name}.", "episodic", "travel"),
    Template("Went to {name}'s {event} in {city} on {month} {day}.", "episodic", "events"),
    Template("Bought a {colour} {car} from a dealer in {city} last {month}.", "episodic", "purchases"),
    Template("Lost their {item} at the {place} on {weekday} and found it a day later.", "episodic", "life"),
    Template("Had a job interview at {company} for a {job} role on {weekday}.", "episodic", "work"),
    Template("Started {hobby} classes with {name} in {month}.", "episodic", "hobbies"),
    Template("Took {petname} the {pet} to the vet in {city} on {month} {day}.", "episodic", "pets"),
    Template("Cooked {food} and {food2} for {name}'s {event}.", "episodic", "food"),
    Template("Wants answers in {language} with short bullet points.", "procedural", "preferences"),
    Template("Likes to be reminded about a {event} one week before it happens.", "procedural", "preferences"),
    Template("Asks for {cuisine} recipes without {food}.", "procedural", "food"),
    Template("Prefers examples in {skill} when asking technical questions.", "procedural", "work"),
)

QUESTIONS: tuple[str, ...] = (
    "What {cuisine} dishes would I enjoy tonight?",
    "Do I have any allergies, like to {food}?",
    "Where does my {relation} live these days?",
    "When is {name}'s birthday again?",
    "Can you recommend a place in {city} for {food}?",
    "Which instrument did I say I play?",
    "Remind me what I told you about {petname}.",
    "How was my trip to {city} with {name}?",
    "Who do I have a call with on {weekday}?",
    "Any tips for learning {skill} faster?",
    "What do I use {tool} for at {company}?",
    "Gift ideas for {name}'s {event}?",
    "What should I drink instead of {drink} in the evening?",
    "I just got back from {city} and the {food} was amazing.",
    "My {relation} {name} wants to start {hobby}, any advice?",
    "Plan a {season} weekend of {hobby} near {city} for me.",
    "What was the {genre} book {name} recommended?",
    "Should I switch from {job} to {job2}?",
    "Where did I lose my {item} last time?",
    "How many kilometres do I run before a {event}?",
    "Translate this into {language} for my {relation}.",
    "What colour did I want for the flat in {city}?",
    "Is {sport} on this {weekday}? I might watch with {name}.",
    "What did I cook for {name}'s {event}?",
)

REPLIES: tuple[str, ...] = (
    "Sure. Based on what you told me, {name} would probably enjoy {food} from a {cuisine} place.",
    "You mentioned {city} before; the {place} there is worth a visit in {month}.",
    "Here is a short plan: {hobby} on {weekday}, then {food} with {name} in the evening.",
    "I do not have anything saved about that yet. Tell me more about {name}?",
    "Noted. I will remember that your {relation} prefers {drink} over {drink2}.",
    "Good question. For {skill}, start with small projects and practise every {weekday}.",
)

_FORMATTER = string.Formatter()


def _slots(template: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


def _kind(slot: str) -> str:
    """`food2` draws from the same list as `food`."""
    return slot.rstrip("0123456789")


@dataclass(frozen=True)
class Fact:
    text: str
    type: str
    topics: tuple[str, ...]
    entities: tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    """A template with its slot values; `Corpus.vary` re-draws slots to make a near-duplicate."""

    template: Template
    values: tuple[tuple[str, str], ...]

    def fact(self) -> Fact:
        values = dict(self.values)
        entities = tuple(dict.fromkeys(v.lower() for s, v in self.values if _kind(s) in ENTITY_SLOTS))
        return Fact(
            text=self.template.text.format(**values),
            type=self.template.type,
            topics=(self.template.topic,),
            entities=entities,
        )


class Corpus:
    """Seeded generator of memory facts, search queries and chat turns."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.asked: set[str] = set()

    def _fill(self, template: str) -> dict[str, str]:
        return {slot: self.rng.choice(WORDS[_kind(slot)]) for slot in _slots(template)}

    def draft(self) -> Draft:
        template = self.rng.choice(TEMPLATES)
        return Draft(template, tuple(self._fill(template.text).items()))

    def vary(self, draft: Draft, changes: int = 1) -> Draft:
        """Same template, `changes` slots re-drawn: a different memory about a similar thing."""
        values = dict(draft.values)
        for slot in self.rng.sample(list(values), k=min(changes, len(values))):
            values[slot] = self.rng.choice(WORDS[_kind(slot)])
        return Draft(draft.template, tuple(values.items()))

    def question(self) -> str:
        template = self.rng.choice(QUESTIONS)
        return template.format(**self._fill(template))

    def fresh_question(self) -> str:
        """A question this corpus has not handed out before: the engine caches recent embeddings,
        and a repeated message would time a cache hit instead of the model."""
        while True:
            text = self.question()
            if text not in self.asked:
                self.asked.add(text)
                return text

    def reply(self) -> str:
        template = self.rng.choice(REPLIES)
        return template.format(**self._fill(template))

    def vocabulary_size(self) -> int:
        return len({w.lower() for words in WORDS.values() for w in words})
