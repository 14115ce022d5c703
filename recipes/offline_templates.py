"""Sentence templates for the offline generator, one list per label.

A critical template carries the issue it raises (late, errors, unclear, quality, effort, conduct);
the rewrite pairs answer that issue with a suggestion about the same {item}.
Slots: {item} {name} {time} {deadline} {aspect} {strength} {fix}.
"""
from __future__ import annotations

from recipes import offline_templates_more as more
from recipes import offline_templates_fourth as fourth
from recipes import offline_templates_third as third

FIXES = {
    "late": ["share a short timeline for {item} at the start", "flag any delays on {item} as soon as you see them",
             "send a quick status on {item} midway through", "set a reminder two days before {item} is due",
             "break {item} into smaller milestones", "agree a realistic deadline for {item} up front"],
    "errors": ["double-check the figures in {item}", "ask {name} to review {item} before it goes out",
               "run through a short checklist on {item}", "leave an hour to proofread {item}",
               "compare {item} against the source data", "explain how you checked {item}"],
    "unclear": ["add a short summary to the top of {item}", "split {item} into clearer sections",
                "lead {item} with the main recommendation", "cut {item} down to the key points",
                "use a few headings to guide readers through {item}", "share your plan for {item} first"],
    "quality": ["spend a bit more time polishing {item}", "look at last year's best example before starting {item}",
                "go through {item} together and list what to improve", "add more evidence to back up {item}",
                "test {item} with a colleague before sharing it", "focus on the {aspect} of {item}"],
    "effort": ["block out focused time each morning for {item}", "raise it early if {item} feels stuck",
               "set two or three clear goals for {item} this month", "meet weekly so we can keep {item} on track",
               "pick one part of {item} to improve first", "ask for help with {item} early"],
    "conduct": ["keep the discussion about {item} focused on the work", "give the team a quick update on {item}",
                "talk through what happened with {item} one to one", "check in with {name} before changing {item}",
                "raise concerns about {item} in the next meeting", "agree with the team who owns {item}"],
}
ISSUES = tuple(FIXES)

POSITIVE = [
    "You nailed {item}.", "{item} is exactly the standard we want, well done.", "Honestly impressed by how you turned {item} around.", "The team keeps pointing to {item} as the example to follow.", "{name} and I both thought {item} was superb.", "Cheers for sorting {item} so quickly.", "You handled {item} with real care and it showed.", "What a great result on {item}!",
    "Thanks so much, {item} was exactly what we needed.", "Really nice touch with {item}.", "Whoever says you can't do it should look at {item}.", "That was a great save on {item} {time}.", "I couldn't have asked for more from {item}.", "Lovely work, {name}.",
    "Great job on {item}!", "{item} was excellent; {strength}.", "Thank you for {item}, the team loved it.",
    "I was really impressed with {item}.", "You did a fantastic job with {item} {time}.",
    "Well done, {name}, {item} looks brilliant.", "{item} is the best I have seen from anyone here.",
    "I really appreciate the care you put into {item}.", "Nice work on {item}; {strength}.",
    "Everyone noticed how smoothly {item} went.", "{item} made my job so much easier, thank you.",
    "You should be proud of {item}.", "Your {aspect} on {item} was spot on.",
    "Thanks for going the extra mile on {item}.", "{item} came together beautifully.",
    "The client was delighted with {item}.", "I love how clear and tidy {item} is.",
    "Honestly, {item} was a real highlight {time}.", "Brilliant effort on {item}, keep it up.",
    "Your hard work on {item} really paid off.", "It's great to see how much you've grown, {item} proves it.",
    "{name} told me {item} was a pleasure to work with.", "Top marks for {item}.",
]
HELPFUL = [
    "Next round, {fix}, and it will be even stronger.", "Have you considered asking {name} to help you {fix}?", "Maybe block some time to {fix}.", "One thing that usually works is to {fix}.",
    "When you get a chance, {fix}.", "Do you think you could {fix}?", "A quick tip for {item}: {fix}.", "It could be worth trying to {fix}.", "Please {fix} when you have a moment.", "We could {fix} so it lands better.",
    "Could you {fix} next time?", "It might help to {fix}.", "One idea: {fix}.", "Next time, try to {fix}.",
    "I'd suggest you {fix}.", "Would it be possible to {fix} {deadline}?", "Perhaps you could {fix}.",
    "Have you thought about asking {name} for help with {item}?", "Consider whether you could {fix}.",
    "A small change that would help: {fix}.", "Let's {fix} together this week.", "Maybe {fix} before the next round.",
    "If you {fix}, it will be much easier for everyone.", "Going forward, please {fix}.",
    "My suggestion would be to {fix}.", "Why not {fix}? It usually helps.", "You might want to {fix}.",
    "It would be great if you could {fix} {deadline}.", "How about we {fix} on Monday?",
    "For {item}, a useful next step is to {fix}.", "Try to {fix}; it tends to save time later.",
]
BALANCED = [
    "{item} reads well overall; the {aspect} is the one thing to sort out.", "{strength} in {item}, even if it arrived a little late.", "Most of {item} works; let's talk about the {aspect} before it ships.",
    "Nice job getting {item} out, though next time please {fix}.", "The {aspect} of {item} is weak, but the rest is really good.", "I liked most of {item}; the only thing missing is a clearer {aspect}.", "Strong effort on {item}, but we need to fix the errors before Friday.", "You clearly worked hard on {item}, so let's polish the {aspect} together.",
    "{item} is a good start, but the {aspect} needs work; could you {fix}?",
    "I like {item}, though the {aspect} could be stronger.",
    "In {item}, {strength}, but I'd {fix} before it goes out.",
    "{item} shows real effort; the {aspect} is the part to improve.",
    "{strength} in {item}; however, the {aspect} is not there yet, so please {fix}.",
    "Overall {item} is solid, but it came in late, so next time {fix}.",
    "I appreciate the work on {item}, yet the {aspect} makes it hard to use as it is.",
    "{item} is close: {strength}, and with a clearer {aspect} it would be ready.",
    "Good progress on {item}, though I noticed a few mistakes we should fix together.",
    "While {item} has a strong foundation, the {aspect} still needs attention.",
    "You handled {item} well overall, but let's {fix} next time.",
    "The ideas in {item} are good; the {aspect} just needs tightening.",
    "{item} is much better than last time, even if the {aspect} is still uneven.",
    "Thanks for {item}; it's useful, but it would help to {fix}.",
    "I can see the effort in {item}, but the {aspect} let it down a little, so {fix}.",
    "{strength}, which is great; the weak spot in {item} is the {aspect}.",
]
VAGUE = [
    ("{item} is not quite it.", "quality"), ("I was hoping for something different with {item}.", "quality"), ("Not sure {item} is working.", "quality"),
    ("Meh.", "quality"), ("I just don't like it.", "quality"), ("Can you do better than {item}?", "quality"), ("Not sure what happened with {item}.", "unclear"), ("The whole thing needs rethinking.", "quality"), ("It is what it is, I guess.", "quality"),
    ("{item} isn't really what I was looking for.", "quality"), ("Something about {item} feels off.", "quality"),
    ("{item} needs more work.", "quality"), ("I'm not sure {item} is up to standard.", "quality"),
    ("{item} could be better.", "quality"), ("{item} just doesn't work for me.", "quality"),
    ("This isn't quite right.", "quality"), ("{item} is not there yet.", "quality"),
    ("I expected more from {item}.", "effort"), ("Your work {time} has been a bit of a problem.", "effort"),
    ("{item} doesn't really land.", "unclear"), ("I don't know, {item} just seems wrong somehow.", "errors"),
    ("Not your best work.", "quality"), ("{item} is kind of all over the place.", "unclear"),
    ("There are issues with {item}.", "errors"), ("{item} feels a bit lacking.", "quality"),
    ("Hmm, {item} is okay I suppose.", "quality"), ("Things with {item} have not been great {time}.", "effort"),
    ("I have some concerns about {item}.", "quality"), ("{item} misses the mark somehow.", "unclear"),
]
HARSH = [
    ("{item} is terrible, start again.", "quality"), ("Honestly, {item} is below anything I'd accept.", "quality"), ("{item} is full of holes.", "errors"),
    ("Why is {item} so bad?", "quality"), ("Redo {item}, it's garbage.", "quality"), ("I can't believe you called {item} finished.", "quality"), ("This is the sloppiest work I've seen all year.", "errors"), ("{item} is a joke.", "quality"), ("What a waste of everyone's time {item} was.", "unclear"),
    ("{item} is a complete disaster.", "quality"), ("{item} is sloppy and full of mistakes.", "errors"),
    ("That was the worst {aspect} I have seen in {item}.", "quality"), ("{item} was painful to sit through.", "unclear"),
    ("{item} is totally unacceptable.", "quality"), ("{item} is amateurish and nowhere near ready.", "quality"),
    ("Your work on {item} has been absolutely disappointing.", "effort"), ("{item} was late, again, and it was a mess.", "late"),
    ("Frankly, {item} is useless.", "quality"), ("{item} is riddled with errors.", "errors"),
    ("Nobody could follow {item}; it was a confusing mess.", "unclear"), ("{item} is embarrassing for the whole team.", "quality"),
    ("Your performance on {item} has been terrible {time}.", "effort"), ("{item} is lazy work.", "effort"),
    ("I have never seen such a poor {aspect} as in {item}.", "quality"), ("The numbers in {item} are all wrong.", "errors"),
    ("{item} was a shambles from start to finish.", "quality"),
    ("{item} should never have left your desk in that state.", "errors"),
    ("It doesn't seem you've put any effort into {item} at all.", "effort"),
]
SARCASTIC = [
    ("Oh, another brilliant idea for {item}. Can't wait.", "quality"), ("Well done, you managed to make {item} even longer.", "unclear"), ("Sure, because {item} obviously doesn't need checking.", "errors"), ("I guess deadlines are more of a suggestion for {item}.", "late"), ("Ah yes, {item}, the gift that keeps on giving.", "errors"), ("So glad we spent three weeks on {item} for this.", "quality"),
    ("Another meeting about {item} that could have been an email, lovely.", "unclear"), ("Oh sure, I'll just explain {item} to the client myself then.", "unclear"), ("Love how {item} has a new surprise every single day.", "errors"), ("Great, so we're doing {item} from memory now?", "errors"), ("Nice of {item} to show up eventually.", "late"),
    ("Oh great, {item} is late again. What a surprise.", "late"), ("Wow, {item} on time for once. Mark the calendar.", "late"),
    ("Nice of you to finally send {item}.", "late"), ("Sure, let's ship {item} with all those mistakes, what could go wrong.", "errors"),
    ("I see you've reinvented {item} from scratch. Again.", "quality"), ("Congratulations on finally reading the brief for {item}.", "unclear"),
    ("Brilliant, another {item} nobody can understand.", "unclear"),
    ("Bold choice, doing {item} without checking anything.", "errors"), ("I'm sure {item} will fix itself if we wait long enough.", "effort"),
    ("Thanks for the surprise, I love finding out about {item} from the client.", "conduct"),
    ("Take your time with {item}, it's not like anyone's waiting.", "late"),
    ("Lovely, {item} only took three weeks longer than planned.", "late"), ("Glad to see {item} got all of five minutes of your attention.", "effort"),
    ("Oh, so that's what you call a finished {doc}.", "quality"), ("Truly inspiring how {item} manages to say nothing at all.", "unclear"),
    ("I suppose checking the numbers in {item} was optional.", "errors"), ("What a treat, {item} arrived right after the deadline.", "late"),
    ("Don't worry, I'm sure the client loves guessing what {item} means.", "unclear"),
]
BLAME = [
    ("Because you forgot {item}, the client is furious.", "late"), ("{item} went wrong because you cut corners.", "quality"), ("This whole mess with {item} started with your decision.", "conduct"), ("You caused the delay on {item}, not the team.", "late"), ("The numbers were wrong because you never checked {item}.", "errors"),
    ("The client walked because of you.", "conduct"), ("All of this went wrong because you didn't listen.", "conduct"), ("We're late because you sat on {item} for a week.", "late"), ("{item} broke on your watch, so it's your problem.", "errors"), ("It was your job to check {item}.", "errors"),
    ("We lost the client because of {item}, and that's on you.", "errors"), ("{item} failed because you didn't check it.", "errors"),
    ("You're the reason {item} is late.", "late"), ("If you had done {item} properly, we wouldn't be in this mess.", "quality"),
    ("This delay on {item} is entirely your fault.", "late"), ("Thanks to your mistake in {item}, the whole team is working this weekend.", "errors"),
    ("You let {item} slip and now everyone is paying for it.", "late"), ("Because you ignored {item}, we missed the target.", "effort"),
    ("The mistakes in {item} are all down to you.", "errors"), ("You broke {item} and left others to clean up.", "conduct"),
    ("It's your fault the client complained about {item}.", "quality"), ("You never told anyone about {item}, so this is on you.", "conduct"),
    ("Who signed off {item}? You did, so own it.", "errors"), ("We are behind on {item} because you keep changing your mind.", "conduct"),
    ("You dropped {item} and blamed {name} for it.", "conduct"), ("Your carelessness with {item} cost us the deal.", "errors"),
    ("Because of you, {item} has to be redone.", "quality"), ("You promised {item} {time} and you didn't deliver.", "late"),
]
PERSONAL = [
    ("You're clueless.", "quality"), ("Honestly, you're the laziest person on the team.", "effort"), ("You have no idea what you're doing.", "quality"), ("Nobody wants you on {item} because you're so difficult.", "conduct"),
    ("You're a liability.", "quality"), ("You are honestly the worst hire we've made.", "quality"), ("Are you even trying, or are you just stupid?", "effort"), ("Nobody trusts you with anything, least of all {item}.", "quality"), ("You're so full of yourself.", "conduct"),
    ("You're just lazy.", "effort"), ("You are not smart enough for this job.", "quality"), ("Nobody can stand working with you.", "conduct"),
    ("You are the most disorganised person on this team.", "late"), ("You clearly don't care about anyone but yourself.", "conduct"),
    ("What kind of idiot gets {item} wrong?", "errors"), ("You have no talent for this.", "quality"),
    ("You're hopeless, and {item} proves it.", "quality"), ("Honestly, you're a terrible colleague.", "conduct"),
    ("You are so careless it's unbelievable.", "errors"), ("Only someone as clueless as you could mess up {item}.", "errors"),
    ("You're rude, arrogant and impossible to manage.", "conduct"), ("You are a waste of space on this team.", "effort"),
    ("You just don't have what it takes.", "quality"),
    ("Frankly, you're an embarrassment to the department.", "quality"), ("You never listen because you think you know everything.", "conduct"),
    ("You have the attention span of a goldfish.", "errors"),
]
THREAT = [
    ("Mess up {item} again and you're fired.", "errors"), ("If {item} isn't on my desk {deadline}, start looking for another job.", "late"), ("Keep missing deadlines on {item} and HR will hear about it.", "late"), ("Last warning: {item} improves or you go.", "quality"), ("Do you want to keep your job? Then fix {item} {deadline}.", "quality"), ("One more complaint and your contract is over.", "conduct"), ("I will escalate this to the board if {item} slips again.", "late"),
    ("Do it again and you're gone.", "conduct"), ("This is your last chance with {item}.", "quality"), ("You'll regret it if {item} isn't done {deadline}.", "late"), ("Expect a formal warning if {item} slips one more time.", "late"), ("If this keeps happening, I'll make sure you're let go.", "effort"),
    ("If {item} is late again, you're out.", "late"), ("One more mistake in {item} and I'll take this to HR.", "errors"),
    ("Fix {item} {deadline} or I'll find someone who can.", "quality"), ("Keep this up and you won't have a job next quarter.", "effort"),
    ("I'm afraid we will have to evaluate your position in this company if this continues.", "effort"),
    ("Miss another deadline on {item} and your contract will not be renewed.", "late"),
    ("If {item} isn't perfect {deadline}, there will be consequences.", "quality"),
    ("Do that to {item} again and you'll be cleaning out your desk.", "conduct"),
    ("Get {item} sorted {deadline}, or I'm reporting this to the director.", "late"),
    ("Another {doc} like {item} and you're on a final warning.", "quality"),
    ("If I hear one more complaint about {item}, you're finished here.", "conduct"),
    ("Either {item} improves or we'll be having a very different conversation.", "quality"),
    ("You'll be replaced if {item} doesn't get better {deadline}.", "effort"),
    ("I'm putting you on a performance plan unless {item} is fixed {deadline}.", "errors"),
]


def by_label(lists: dict) -> dict:
    """label -> [(template, issue)] from a module's lists; constructive templates raise no issue."""
    constructive = {"Positive Comment": "POSITIVE", "Helpful Suggestion": "HELPFUL", "Balanced Criticism": "BALANCED"}
    critical = {"Vague Criticism": "VAGUE", "Harsh Criticism": "HARSH", "Sarcastic Comment": "SARCASTIC",
                "Blameful Accusation": "BLAME", "Personal Attack": "PERSONAL", "Threat": "THREAT"}
    return ({label: [(t, None) for t in lists[name]] for label, name in constructive.items()}
            | {label: lists[name] for label, name in critical.items()})


_SETS = [by_label(lists) for lists in (globals(), vars(more), vars(third), vars(fourth))]
LABEL_TEMPLATES = {label: [t for templates in _SETS for t in templates[label]] for label in _SETS[0]}

# Constructive side of a pair: acknowledge + observation of the issue + suggestion, all on {item}.
ACKNOWLEDGE = ["I can see the work you put into {item}", "Thanks for pulling {item} together",
               "{item} has some real strengths", "I appreciate the effort on {item}",
               "You have done good work on {item} before", "There is a lot to build on in {item}",
               "I know {item} has been a lot to handle", "{item} is heading in the right direction",
               "In {item}, {strength}"]
OBSERVE = {
    "late": ["it came in later than we agreed", "the timing slipped {time}", "the deadline was missed"],
    "errors": ["a few of the figures need another look", "there were some mistakes we need to fix",
               "some details were not quite accurate"],
    "unclear": ["the structure makes it hard to follow", "the main point gets a little lost",
                "readers may struggle with the {aspect}"],
    "quality": ["the {aspect} is not yet where it needs to be", "it needs another pass before it is ready",
                "it doesn't quite meet the standard we agreed"],
    "effort": ["I'd like to see more consistent progress", "it has stalled {time}",
               "it hasn't had the focus it needs {time}"],
    "conduct": ["the way it was handled caused some friction", "the team was left out of the loop",
                "some of the communication around it was difficult"],
}
CONNECT = ["{ack}, but {obs}. {ask}", "{ack}; however, {obs}, so {ask_lower}", "{ack}. That said, {obs}. {ask}",
           "{ack}, although {obs}. {ask}", "{ack}. I did notice {obs}. {ask}"]
ASK = ["Could you {fix} next time?", "Would you be able to {fix} {deadline}?", "It would help a lot if you could {fix}.",
       "Let's {fix} together.", "Next time, could you {fix}?", "How about we {fix} going forward?",
       "I think it would be great to {fix}.", "Would you {fix} for the next version?"]
