"""Word lists the offline rules read: people, animals, jobs, conditions, and the words that make a
statement about a passing moment rather than about the person."""

from __future__ import annotations

from collections.abc import Iterable


def words(text: str) -> frozenset[str]:
    """Word lists written as one string, so the tables below stay readable ("_" joins a phrase)."""
    return frozenset(w.replace("_", " ") for w in text.split())


ADVERBS = (
    "also|really|just|still|usually|always|never|often|sometimes|now|only|actually|recently|currently|"
    "definitely|absolutely|truly|mostly|rarely|even|already|finally|generally|normally|totally|"
    "honestly|genuinely|seriously|mainly|regularly|occasionally|barely|hardly|seldom|especially|"
    "officially|basically|literally|pretty_much|kind_of|kinda|sort_of|practically|completely|obviously|"
    "technically|proudly|happily|mostly|full_time|part_time"
).replace("_", r"\s+")

RELATIVES = words(
    "wife husband partner spouse boyfriend girlfriend fiance fiancé fiancee fiancée son daughter kid child "
    "baby mother mom mum mam mama mommy mummy father dad papa daddy brother sister sibling twin "
    "grandmother grandma granny nan nana nanna gran grandfather grandpa granddad grandad gramps grandson "
    "granddaughter grandchild grandkid aunt auntie aunty uncle cousin niece nephew stepson stepdaughter "
    "stepmother stepmom stepmum stepfather stepdad stepbrother stepsister boy girl hubby bf gf "
    "mother-in-law father-in-law sister-in-law brother-in-law son-in-law daughter-in-law parents kids "
    "children grandkids grandchildren twins sons daughters brothers sisters cousins little_one toddler "
    "newborn better_half other_half abuelo abuela abuelita nonna nonno oma opa amma appa baba dadi nani lola "
    "lolo tutu bubbe zayde mami papi"
)
ANIMALS = words(
    "dog cat puppy pup kitten kitty hamster rabbit bunny parrot bird fish goldfish turtle tortoise horse "
    "pony guinea_pig snake lizard gecko ferret budgie chinchilla pig pet mare stallion gelding cockatiel "
    "canary hen chicken chickens duck goat sheep cow donkey rat mouse mice hedgehog axolotl iguana frog "
    "tarantula bearded_dragon pets alpaca llama goats sheep cows chickens ducks ponies budgies"
)
BREEDS = words(
    "labrador lab retriever golden_retriever poodle labradoodle goldendoodle cockapoo beagle corgi husky "
    "huskies terrier bulldog french_bulldog frenchie dachshund sausage_dog shepherd german_shepherd "
    "spaniel cocker_spaniel collie border_collie pug chihuahua boxer rottweiler greyhound whippet "
    "schnauzer mastiff great_dane dalmatian doberman pitbull pit_bull pit_mix staffie staffy shih_tzu "
    "maltese pomeranian yorkie akita shiba shiba_inu samoyed malamute vizsla weimaraner ridgeback "
    "basset_hound bloodhound sheepdog cavalier jack_russell westie lurcher "
    "siamese persian ragdoll bengal sphynx tabby maine_coon british_shorthair moggy "
    "haflinger arabian thoroughbred appaloosa cockatoo macaw lovebird kelpie heeler cattle_dog blue_heeler "
    "springer springer_spaniel cockapoo cavapoo schnoodle maltipoo mutt rescue_dog tabby_cat"
)
# What people do for a living. Anything ending in these is a role ("ICU nurse", "sous-chef").
# Suffixes that make a role ("pharmacist", "librarian", "accountant", "engineer", "director",
# "fireman"): checked on words longer than four letters. "-er" alone is too loose ("knitter",
# "beginner", "runner"), so -er roles are listed one by one below.
JOB_SUFFIXES = ("or", "ist", "ian", "ant", "ent", "eer", "man", "woman", "smith", "wright")
JOB_ENDINGS = (
    "person",
    "smith",
    "wright",
    "nurse",
    "chef",
    "cook",
    "doctor",
    "medic",
    "midwife",
    "guide",
    "pilot",
    "teacher",
    "tutor",
    "coach",
    "lawyer",
    "attorney",
    "solicitor",
    "barrister",
    "judge",
    "clerk",
    "analyst",
    "consultant",
    "engineer",
    "architect",
    "vet",
    "dentist",
    "surgeon",
    "nanny",
    "maid",
    "barista",
    "cashier",
    "student",
    "intern",
    "apprentice",
    "resident",
    "fellow",
    "trainee",
    "artist",
    "model",
    "actor",
    "actress",
    "poet",
    "monk",
    "nun",
    "priest",
    "pastor",
    "rabbi",
    "imam",
    "chief",
    "head",
    "lead",
    "manager",
    "officer",
    "agent",
    "assistant",
    "aide",
    "staff",
    "paramedic",
    "firefighter",
    "soldier",
    "sailor",
    "marine",
    "ranger",
    "postie",
    "courier",
    "chauffeur",
    "tailor",
    "butcher",
    "baker",
    "farmer",
    "gardener",
    "pharmacist",
    "therapist",
    "psychologist",
    "scientist",
    "technician",
    "mechanic",
    "electrician",
    "plumber",
    "carpenter",
    "cleaner",
    "receptionist",
    "secretary",
    "librarian",
    "accountant",
    "auditor",
    "dev",
    "sommelier",
    "bartender",
    "waitress",
    "waiter",
    "host",
    "hostess",
    "stylist",
    "hairdresser",
    "coder",
    "freelancer",
    "contractor",
    "founder",
    "ceo",
    "cto",
    "cfo",
    "owner",
    "caretaker",
    "carer",
    "caregiver",
    "optometrist",
    "physio",
    "radiographer",
    "sonographer",
    "phlebotomist",
    "translator",
    "interpreter",
    *words(
        "crew worker employee teacher engineer designer developer programmer writer photographer "
        "driver banker trader officer researcher lecturer trainer manager farmer baker lawyer "
        "carpenter plumber painter decorator builder labourer laborer gardener cleaner cashier "
        "teller broker dealer dispatcher controller producer publisher reporter presenter "
        "broadcaster volunteer leader headteacher headmaster headmistress player singer dancer "
        "rapper songwriter bookkeeper shopkeeper zookeeper goalkeeper housekeeper firefighter "
        "minister surveyor adjuster underwriter estimator planner scheduler organiser organizer "
        "caterer butler porter messenger miner welder fitter machinist roofer glazier tiler joiner "
        "upholsterer jeweller jeweler hairdresser barber groomer paralegal"
    ),
)
NOT_JOBS = words(
    "fan lover person user member customer beginner regular mother father brother sister daughter son parent "
    "christian human student_of resident_of native vegetarian vegan patient client tenant dependent agent_of "
    "wife husband partner owner_of mess disaster winner loser killer sucker night_owl morning_person "
    "introvert extrovert foodie vegetarian vegan pescatarian number other neighbor neighbour"
)
# "I'm X" about a moment, a mood or the conversation, never a fact worth keeping.
TRANSIENT_STATES = words(
    "tired sleepy exhausted knackered hungry thirsty full sorry sure unsure fine ok okay alright good great "
    "well glad happy sad upset angry mad annoyed excited nervous anxious stressed worried scared afraid "
    "terrified bored busy free back here there home done finished ready late early away off out up down "
    "in on sick ill unwell confused curious wondering thinking trying looking going coming leaving "
    "heading getting doing having making planning hoping waiting about just so very kinda sorta literally "
    "still not kidding joking serious lost stuck panicking dreading struggling dying freaking obsessing "
    "grateful thankful lucky blessed proud impressed surprised shocked disappointed frustrated overwhelmed "
    "relieved jealous hyped pumped psyched buzzing gutted stoked chuffed starving craving fed curious "
    "interested considering open able unable allowed supposed meant afraid aware in_trouble at_work at_home "
    "on_my_way the_best the_worst a_bit a_little a_lot all_ears all_set all_good that this it"
)
# Past-tense verbs that change who someone is (a fact), unlike "I went to the shop" (a moment).
LIFE_EVENT_VERBS = words(
    "moved relocated emigrated immigrated graduated married got_married got_engaged got_divorced divorced "
    "retired quit started joined left adopted bought sold switched changed converted became became_a "
    "finished won earned qualified passed inherited built opened founded launched signed enrolled "
    "transferred promoted hired fired gave_up stopped took_up picked_up learned learnt taught raised "
    "grew_up was_born born lost broke_up separated treated upgraded bought got_a picked"
)
# Things one "has" for a while (a condition, a pet, a car); "I have a question" is not one of them.
NOT_POSSESSIONS = words(
    "question questions idea ideas problem problems issue issues doubt doubts feeling feelings meeting "
    "meetings call calls minute minutes second seconds moment moments chance time lot bit few couple "
    "favour favor request suggestion thought thoughts plan plans dream dreams class classes lesson exam "
    "test deadline shift interview date appointment appointments party trip flight week day weekend "
    "morning evening night afternoon headache hangover cold right way clue reason choice break sec "
    "look go job_interview point to option options update news feedback list draft"
)
# First-person verbs that report thoughts, wishes or talk, not facts: "I think", "I need a recipe".
NOT_FACT_VERBS = words(
    "think thought guess hope hoped wish wished wonder wondered want wanted need needed feel felt know knew "
    "mean meant see saw hear heard say said ask asked tell told try tried forget forgot remember understand "
    "agree promise bet suppose reckon believe imagine doubt realise realize realised realized notice noticed "
    "expect figure figured got gotta gonna wanna let appreciate apologise apologize hate_to would could "
    "should might may must can will shall did does am was were had thank thanks love_it like_it mind "
    "care bet swear admit confess found find decided decide am_not suggest recommend wonder_if look looked "
    "sound sounds seem seemed"
)
# Nationalities and demonyms usually end like this ("Brazilian", "Japanese", "Polish", "Thai").
DEMONYM_ENDINGS = ("ian", "ese", "ish", "an", "i", "ic", "ch", "er")
# Single words that stand for a lasting trait after "I'm".
TRAITS = words(
    "vegetarian vegan veggie pescatarian pescetarian carnivore keto paleo diabetic prediabetic epileptic "
    "asthmatic anaemic anemic coeliac celiac gluten-free dairy-free lactose-intolerant allergic intolerant "
    "pregnant married single divorced widowed engaged separated retired unemployed self-employed freelance "
    "left-handed right-handed ambidextrous colorblind colourblind deaf blind autistic dyslexic adhd "
    "gay lesbian bi bisexual straight queer trans transgender nonbinary non-binary asexual "
    "teetotal sober vegetarian vegan jewish muslim christian catholic hindu buddhist sikh atheist agnostic "
    "mormon orthodox introverted extroverted shy tall short"
)
# Words in a statement that say which area of life it is about (the memory's topic).
TOPIC_CUES: dict[str, frozenset[str]] = {
    "health": words(
        "allergic allergy allergies intolerant intolerance diabetes diabetic asthma asthmatic migraine "
        "migraines ibs coeliac celiac gluten lactose dairy anaemic anemic medication medicine pills tablets "
        "inhaler epipen doctor diagnosed condition disease syndrome disorder pressure cholesterol thyroid "
        "hypothyroidism depression anxiety adhd autism epilepsy arthritis pregnant therapy surgery insulin "
        "eczema hay_fever fodmap"
    ),
    "diet": words(
        "vegetarian vegan veggie pescatarian keto paleo halal kosher meat fish dairy eat eats eating diet "
        "food foods cook cooking meal meals drink drinks coffee tea alcohol sober teetotal sugar"
    ),
    "work": words(
        "work works working job career office boss colleague colleagues shift shifts company firm employer "
        "clinic hospital school university college studying study studies degree major teach teaches "
        "teaching manager startup business shop bakery restaurant salary promoted retired freelance "
        "self-employed profession"
    ),
    "location": words(
        "live lives living moved move city town country neighbourhood neighborhood flat apartment house home "
        "born raised grew"
    ),
    "family": RELATIVES,
    "pets": ANIMALS | BREEDS,
    "hobbies": words(
        "play plays playing hobby hobbies learning practise practice practising practicing train training "
        "club band choir team sport sports guitar piano violin cello drums bass sax saxophone ukulele flute "
        "chess yoga pilates climbing bouldering running run runs marathon swimming swim cycling hiking "
        "knitting sewing painting drawing pottery baking gardening fishing surfing skiing dancing singing "
        "reading writing gaming photography volunteer volunteering"
    ),
    "possessions": words(
        "own owns car bike motorbike motorcycle scooter boat van truck laptop phone camera drone house flat "
        "bought drive drives ride rides"
    ),
}


def topic_of(text: str, default: str = "about-user") -> str:
    """The area of life a statement is about, from its words (the first area that matches)."""
    lower = set(text.lower().replace("'s", " ").replace(",", " ").split())
    for topic, cues in TOPIC_CUES.items():
        if lower & cues:
            return topic
    return default


def is_job(phrase: str) -> bool:
    """ "nurse", "ICU nurse", "junior web developer", "sous-chef": the last word names a role."""
    last = phrase.lower().split()[-1].split("-")[-1] if phrase.split() else ""
    if not last or last in NOT_JOBS or phrase.lower() in NOT_JOBS:
        return False
    return last in JOB_ENDINGS or (len(last) > 4 and last.endswith(JOB_SUFFIXES))


def plural_forms(nouns: Iterable[str]) -> dict[str, str]:
    """Every noun and its plural, lower-case → the singular."""
    irregular = {
        "child": "children",
        "wife": "wives",
        "puppy": "puppies",
        "bunny": "bunnies",
        "pony": "ponies",
        "fish": "fish",
        "goldfish": "goldfish",
        "granny": "grannies",
        "mouse": "mice",
        "sheep": "sheep",
        "husky": "huskies",
        "kitty": "kitties",
        "grandchild": "grandchildren",
        "baby": "babies",
    }
    forms: dict[str, str] = {}
    for noun in nouns:
        forms[noun] = noun
        forms[irregular.get(noun, noun + "s")] = noun
    return forms
