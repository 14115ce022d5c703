"""Slot values for the offline generator: workplaces, the people in them, and what gets criticised.

Each workplace lists the work items its feedback is about; pairs copy the item from the negative
side into the constructive side, so the rewriter learns to keep the subject rather than a script.
"""
from __future__ import annotations

# (workplace, who gives the feedback, who receives it, work items)
WORKPLACES = [
    ("a consulting firm", "manager", "junior consultant",
     ["the client report", "the market sizing model", "the interview notes", "the steering committee deck",
      "the project plan", "the competitor analysis"]),
    ("a hedge fund", "portfolio manager", "analyst",
     ["the stock pitch", "the earnings model", "the risk summary", "the morning note", "the valuation",
      "the sector review"]),
    ("a software company", "engineering lead", "developer",
     ["the pull request", "the database migration", "the sprint demo", "the release notes",
      "the unit tests", "the API design", "the incident postmortem", "the login page"]),
    ("a hospital", "ward sister", "nurse",
     ["the shift handover", "the medication chart", "the patient notes", "the discharge summary",
      "the infection control checklist"]),
    ("a primary school", "head teacher", "teacher",
     ["the lesson plan", "the reading assessment", "the parents' evening", "the class newsletter",
      "the science fair", "the marking"]),
    ("a restaurant", "head chef", "line cook",
     ["the lunch service", "the prep list", "the new dessert", "the stock order", "the plating",
      "the kitchen cleaning rota"]),
    ("a retail store", "store manager", "sales assistant",
     ["the window display", "the stock count", "the weekend rota", "the till reconciliation",
      "the customer returns", "the shelf layout"]),
    ("a marketing agency", "creative director", "copywriter",
     ["the campaign brief", "the product launch copy", "the social media calendar", "the newsletter",
      "the brand guidelines", "the pitch deck"]),
    ("a law firm", "partner", "trainee solicitor",
     ["the contract review", "the case summary", "the client memo", "the due diligence report",
      "the court bundle"]),
    ("an accounting firm", "audit manager", "associate",
     ["the quarterly forecast", "the audit file", "the expense report", "the reconciliation",
      "the tax return", "the month-end close"]),
    ("a logistics company", "operations manager", "dispatcher",
     ["the delivery schedule", "the route plan", "the warehouse inventory", "the shipping manifest",
      "the driver rota"]),
    ("a construction site", "site manager", "foreman",
     ["the safety briefing", "the site diary", "the materials order", "the scaffolding inspection",
      "the snag list"]),
    ("a university lab", "principal investigator", "PhD student",
     ["the literature review", "the grant proposal", "the lab notebook", "the conference poster",
      "the experiment protocol", "the thesis chapter"]),
    ("a call centre", "team leader", "customer service agent",
     ["the call notes", "the complaint response", "the escalation log", "the customer survey",
      "the follow-up emails"]),
    ("a design studio", "art director", "junior designer",
     ["the logo concepts", "the website mockups", "the style guide", "the packaging design",
      "the photo edits"]),
    ("a newspaper", "editor", "reporter",
     ["the feature article", "the interview transcript", "the headline", "the fact check",
      "the front page story"]),
    ("a charity", "programme director", "volunteer coordinator",
     ["the fundraising event", "the volunteer rota", "the donor newsletter", "the impact report",
      "the grant application"]),
    ("a hotel", "front office manager", "receptionist",
     ["the guest check-in", "the booking system update", "the complaint log", "the night audit",
      "the welcome pack"]),
    ("a manufacturing plant", "production supervisor", "machine operator",
     ["the quality inspection", "the maintenance log", "the shift report", "the line changeover",
      "the defect tracking sheet"]),
    ("a bank", "branch manager", "loan officer",
     ["the loan application review", "the compliance checklist", "the customer portfolio",
      "the credit assessment", "the monthly sales figures"]),
    ("a human resources team", "HR director", "recruiter",
     ["the onboarding guide", "the job description", "the interview schedule", "the candidate shortlist",
      "the exit interview notes", "the training plan"]),
    ("a game studio", "producer", "level designer",
     ["the level layout", "the playtest report", "the boss fight", "the tutorial", "the milestone build"]),
    ("a research and development team", "product manager", "data scientist",
     ["the churn analysis", "the A/B test results", "the dashboard", "the data pipeline",
      "the forecast model", "the product roadmap"]),
    ("a real estate agency", "sales director", "estate agent",
     ["the property listing", "the viewing schedule", "the valuation report", "the client follow-up",
      "the open house"]),
    ("an airline", "cabin service manager", "flight attendant",
     ["the pre-flight checks", "the boarding process", "the passenger announcements", "the incident report"]),
    ("a public library", "head librarian", "library assistant",
     ["the reading programme", "the catalogue update", "the book display", "the events calendar"]),
    ("a pharmacy", "lead pharmacist", "pharmacy technician",
     ["the prescription checks", "the stock rotation", "the controlled drugs register", "the patient leaflets"]),
    ("an IT support desk", "service desk manager", "support technician",
     ["the ticket backlog", "the laptop rollout", "the password reset guide", "the outage update",
      "the knowledge base article"]),
    ("a film production", "director", "assistant editor",
     ["the rough cut", "the shot list", "the sound mix", "the call sheet", "the trailer"]),
    ("a city council", "department head", "policy officer",
     ["the public consultation", "the budget proposal", "the planning report", "the briefing paper",
      "the council meeting minutes"]),
    ("a fitness centre", "gym manager", "personal trainer",
     ["the class timetable", "the client programme", "the induction session", "the equipment check"]),
    ("an event company", "event director", "event planner",
     ["the venue booking", "the seating plan", "the speaker schedule", "the catering order",
      "the conference programme"]),
]

# Nouns that name a piece of work; a random word in front of one makes an item never seen before,
# so the rewriter has to copy it instead of recalling it.
DOC_NOUNS = ["report", "plan", "deck", "review", "schedule", "proposal", "summary", "budget", "draft",
             "presentation", "spreadsheet", "update", "analysis", "checklist", "memo", "roadmap",
             "forecast", "design", "audit", "handover", "rollout", "timeline", "estimate", "guide"]

NAMES = ["Sam", "Priya", "Alex", "Jordan", "Maria", "Tom", "Aisha", "Chen", "Lucas", "Fatima", "Noah",
         "Emma", "Ravi", "Sofia", "Ben", "Yuki", "Omar", "Grace", "Leo", "Hannah"]

TIMES = ["this week", "last week", "this month", "this quarter", "again", "on Monday", "yesterday",
         "this sprint", "over the past few months", "lately", "twice now", "last time", "today"]

DEADLINES = ["by Friday", "by the end of the week", "before the launch", "by tomorrow morning",
             "before the next review", "by the end of the month", "before the client call", "by Monday"]

ASPECTS = ["structure", "level of detail", "accuracy", "clarity", "timing", "tone", "layout",
           "research", "organisation", "follow-through", "attention to detail", "consistency"]

STRENGTHS = ["the research is thorough", "the opening is strong", "the effort really shows",
             "the main idea is clear", "the layout looks clean", "you clearly know the material",
             "the first half is excellent", "the data is well chosen", "the tone is friendly",
             "you covered a lot of ground", "the examples are helpful", "it is well organised"]

CONTEXT_TEMPLATES = [
    "You are {a_giver} at {workplace} and you are giving feedback to {a_receiver} on {item}",
    "You are the {giver} at {workplace}, talking to {a_receiver} about {item}",
    "{A_giver} at {workplace} is reviewing {item} with {a_receiver}",
    "As {a_giver} at {workplace}, you are giving {a_receiver} feedback about {item}",
    "You work as {a_giver} at {workplace} and need to discuss {item} with {a_receiver} on your team",
    "You are {a_giver} at {workplace}; {a_receiver} has just handed in {item}",
    "You are {a_giver} at {workplace} giving feedback to {a_receiver}",
    "You manage {a_receiver} at {workplace}",
    # Situations that name no work item: the rewrite must take its subject from the feedback,
    # not copy a phrase of the context ("underperforming for a while" is not what was criticised).
    "You are {a_giver} at {workplace} giving feedback to {a_receiver}, who {situation}",
    "You manage {a_receiver} at {workplace} who {situation}",
    "You are a manager giving feedback to someone on your team who {situation}",
    "You are {a_giver} talking to {a_receiver} who {situation}",
]
# How a context may name the person when it says "your ...": their role or a word for any report.
# Without these, "giving feedback to your subordinate" read like a work item to the rewriter.
GENERIC_RECEIVERS = ["direct report", "team member", "colleague", "subordinate", "new hire", "junior colleague",
                     "report", "trainee"]
SITUATIONS = ["has been underperforming for a while", "has struggled with deadlines all quarter",
              "joined the team a few weeks ago", "is usually one of your most reliable people",
              "has had a difficult few months", "keeps missing the weekly stand-up", "was promoted recently",
              "has been working very long hours lately", "is new to the role", "has had several customer complaints",
              "is preparing for an annual review", "came back from leave last month", "has been falling behind since spring",
              "covers the night shift", "asked you for honest feedback", "is on a probation period",
              "has made the same mistakes repeatedly", "works remotely most of the week"]

# Everyday items any workplace has, in both splits: real feedback names these more than anything.
GENERIC_ITEMS = ["the code", "the slides", "the deck", "the email", "the meeting", "the presentation", "the numbers",
                 "the design", "the release", "the proposal", "the schedule", "the budget", "the notes", "the report",
                 "the update", "the plan", "the draft", "the spreadsheet", "the handover", "the demo", "the project"]

# Items about the person rather than a document, as in the original work's manager example.
PERSONAL_ITEMS = ["your performance", "your time keeping", "your communication with the team",
                  "your recent reports", "your code reviews", "your customer calls", "your weekly updates",
                  "your preparation for meetings", "your results this quarter", "your handovers"]
