"""A deterministic staff directory of Brightline Software, a 36-person company in Rotterdam.

People, departments and reporting lines come from the fixed tables below; the few
generated details (desks, start dates) from one seeded `random.Random`, never from the
wall clock, so every process sees the same directory for the same seed.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

from google.type import date_pb2

from examples.people.v1 import people_pb2

DOMAIN = "brightline.example"

# Department id | name | head's person id | main building.
_DEPARTMENTS = """
dept_exec | Executive Office | emp_001 | Harbour House
dept_eng | Engineering | emp_002 | Harbour House
dept_product | Product | emp_003 | Harbour House
dept_sales | Sales | emp_004 | Mill Yard
dept_success | Customer Success | emp_005 | Mill Yard
dept_ops | People & Finance | emp_006 | Harbour House
"""

# One person per line: id | full name | title | department | manager | type | status |
# building | floor | skills (comma-separated).
_PEOPLE = """
emp_001 | Marguerite Okafor | Chief Executive Officer | dept_exec | | FULL_TIME | ACTIVE | Harbour House | 5 | strategy,fundraising
emp_002 | Ana Kovač | VP of Engineering | dept_eng | emp_001 | FULL_TIME | ACTIVE | Harbour House | 3 | go,architecture,hiring
emp_003 | Tomás Rivera | Head of Product | dept_product | emp_001 | FULL_TIME | ACTIVE | Harbour House | 4 | roadmapping,user-research
emp_004 | Ingrid Halvorsen | VP of Sales | dept_sales | emp_001 | FULL_TIME | ACTIVE | Mill Yard | 1 | negotiation,norwegian
emp_005 | Kwame Mensah | Head of Customer Success | dept_success | emp_001 | FULL_TIME | ACTIVE | Mill Yard | 2 | onboarding,sql
emp_006 | Priya Raman | Head of People & Finance | dept_ops | emp_001 | FULL_TIME | ACTIVE | Harbour House | 2 | accounting,employment-law
emp_007 | Daniel Fischer | Engineering Manager, Platform | dept_eng | emp_002 | FULL_TIME | ACTIVE | Harbour House | 3 | kubernetes,go,hiring
emp_008 | Mei Lin Zhou | Engineering Manager, Product Engineering | dept_eng | emp_002 | FULL_TIME | ACTIVE | Harbour House | 3 | typescript,react,hiring
emp_009 | Sven Olsen | Finance Manager | dept_ops | emp_006 | FULL_TIME | ACTIVE | Harbour House | 2 | accounting,excel
emp_010 | Laura Bianchi | People Partner | dept_ops | emp_006 | FULL_TIME | ON_LEAVE | Harbour House | 2 | recruiting,employment-law,italian
emp_011 | Dmitri Volkov | IT Administrator | dept_ops | emp_006 | FULL_TIME | ACTIVE | Harbour House | 0 | macos,security,networking
emp_012 | Lotte Brouwer | Executive Assistant | dept_exec | emp_001 | PART_TIME | ACTIVE | Harbour House | 5 | scheduling,dutch
emp_013 | Oskar Lindgren | Senior Backend Engineer | dept_eng | emp_007 | FULL_TIME | ACTIVE | Harbour House | 3 | go,kubernetes,postgresql
emp_014 | Fatima Al-Sayed | Site Reliability Engineer | dept_eng | emp_007 | FULL_TIME | ACTIVE | Harbour House | 3 | kubernetes,terraform,python
emp_015 | Jonas Weber | Backend Engineer | dept_eng | emp_007 | PART_TIME | ACTIVE | Harbour House | 3 | python,postgresql
emp_016 | Chiara Romano | Senior Frontend Engineer | dept_eng | emp_008 | FULL_TIME | ACTIVE | Harbour House | 4 | typescript,react,accessibility
emp_017 | Raj Patel | Frontend Engineer | dept_eng | emp_008 | FULL_TIME | ON_LEAVE | Harbour House | 4 | typescript,react
emp_018 | Sofia Petrova | Mobile Engineer | dept_eng | emp_008 | CONTRACTOR | ACTIVE | Harbour House | 4 | kotlin,swift
emp_019 | Lucas Martin | Software Engineering Intern | dept_eng | emp_007 | INTERN | ACTIVE | Harbour House | 3 | python
emp_020 | Nadia Haddad | QA Engineer | dept_eng | emp_008 | CONTRACTOR | ACTIVE | Harbour House | 4 | python,testing
emp_021 | Erik Johansson | Security Engineer | dept_eng | emp_007 | FULL_TIME | ACTIVE | Harbour House | 3 | security,go,python
emp_022 | Hannah Schmidt | Data Engineer | dept_eng | emp_007 | FULL_TIME | TERMINATED | Harbour House | 3 | python,sql,airflow
emp_023 | Yuki Tanaka | Senior Product Manager | dept_product | emp_003 | FULL_TIME | ACTIVE | Harbour House | 4 | roadmapping,sql,japanese
emp_024 | Grace O'Neill | Product Designer | dept_product | emp_003 | FULL_TIME | ACTIVE | Harbour House | 4 | figma,user-research
emp_025 | Mateus Costa | UX Researcher | dept_product | emp_003 | PART_TIME | ACTIVE | Harbour House | 4 | user-research,interviews,portuguese
emp_026 | Elif Demir | Product Design Intern | dept_product | emp_024 | INTERN | ACTIVE | Harbour House | 4 | figma
emp_027 | Pieter Jansen | Account Executive | dept_sales | emp_004 | FULL_TIME | ACTIVE | Mill Yard | 1 | negotiation,salesforce,dutch
emp_028 | Amara Nwosu | Account Executive | dept_sales | emp_004 | FULL_TIME | ACTIVE | Mill Yard | 1 | negotiation,salesforce,german
emp_029 | Louis Girard | Sales Development Representative | dept_sales | emp_004 | FULL_TIME | ACTIVE | Mill Yard | 1 | salesforce,french
emp_030 | Zofia Nowak | Sales Engineer | dept_sales | emp_004 | FULL_TIME | ACTIVE | Mill Yard | 1 | python,sql,demos,polish
emp_031 | Ben Carter | Sales Development Intern | dept_sales | emp_029 | INTERN | ACTIVE | Mill Yard | 1 | salesforce
emp_032 | Isabel Moreno | Customer Success Manager | dept_success | emp_005 | FULL_TIME | ACTIVE | Mill Yard | 2 | onboarding,spanish
emp_033 | Tariq Aziz | Support Engineer | dept_success | emp_005 | FULL_TIME | ON_LEAVE | Mill Yard | 2 | sql,python,api
emp_034 | Julia Becker | Support Specialist | dept_success | emp_005 | PART_TIME | ACTIVE | Mill Yard | 2 | onboarding,german
emp_035 | Noah Dubois | Support Specialist | dept_success | emp_005 | CONTRACTOR | ACTIVE | Mill Yard | 2 | french,onboarding
emp_036 | Aisha Bello | Recruiter | dept_ops | emp_010 | CONTRACTOR | ACTIVE | Harbour House | 2 | recruiting,interviews
"""


@dataclass(frozen=True)
class DepartmentInfo:
    """A department as the tables define it; the service computes its numbers."""

    id: str
    name: str
    head_id: str
    main_building: str


@dataclass
class Directory:
    """The people by id (in id order) and the departments by id."""

    people: dict[str, people_pb2.Person]
    departments: dict[str, DepartmentInfo]


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in table.strip().splitlines()]


def email_of(full_name: str) -> str:
    """ "Ana Kovač" -> "ana.kovac@brightline.example" (accents and apostrophes dropped)."""
    plain = unicodedata.normalize("NFKD", full_name).encode("ascii", "ignore").decode()
    parts = ["".join(c for c in part if c.isalnum()) for part in plain.lower().split()]
    return f"{parts[0]}.{parts[-1]}@{DOMAIN}"


def phone_of(number: int) -> str:
    """A stable Rotterdam work number for person number `number`."""
    return f"+31 10 {200 + number * 7} {(number * 37) % 90 + 10:02d} {(number * 53) % 90 + 10:02d}"


def generate(seed: int = 11) -> Directory:
    """Build the directory for `seed`; the same seed always gives the same data."""
    rng = random.Random(seed)
    departments = {
        row[0]: DepartmentInfo(id=row[0], name=row[1], head_id=row[2], main_building=row[3])
        for row in _rows(_DEPARTMENTS)
    }
    people: dict[str, people_pb2.Person] = {}
    for pid, name, title, dept, manager, kind, status, building, floor, skills in _rows(_PEOPLE):
        number = int(pid.removeprefix("emp_"))
        start = date_pb2.Date(
            year=2016 + min(9, number // 4 + rng.randint(0, 1)),
            month=rng.randint(1, 12),
            day=rng.randint(1, 28),
        )
        people[pid] = people_pb2.Person(
            id=pid,
            full_name=name,
            title=title,
            department_id=dept,
            manager_id=manager,
            employment_type=f"EMPLOYMENT_TYPE_{kind}",
            status=f"STATUS_{status}",
            contact=people_pb2.Contact(
                email=email_of(name),
                phone=phone_of(number),
                office=people_pb2.Office(
                    building=building, floor=int(floor), desk=f"{floor}-{rng.randint(1, 40):02d}"
                ),
            ),
            skills=skills.split(","),
            start_date=start,
        )
    for person in people.values():
        if person.manager_id:
            people[person.manager_id].reports.append(person.id)
    return Directory(people=people, departments=departments)
